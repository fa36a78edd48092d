#!/usr/bin/env bash
# The checks that need a GPU, in one run of at most 8 minutes:
#
#   1. every test marked @pytest.mark.gpu                 -> gpu_tests.txt
#   2. the Langevin samplers side by side: bare loop, torchebm,
#      ebmkit (when installed), skebm fp32 and bf16; MLP, conv
#      8x8 and 28x28, ResNet 32x32 (bench_langevin)         -> bench_langevin.md
#   3. a short training benchmark of every estimator,
#      fp32 and bf16 (bench_scaling --sections estimators)  -> train_speed.md
#   4. the data-parallel tests (tests/test_distributed.py:
#      2 CPU processes on gloo, and the CUDA variant)       -> distributed.txt
#   5. a short run of every skebm.presets configuration (5
#      updates each as published, on 32x32 colour digits)  -> presets.md
#   6. ResNet 32x32 training stability, fp32 and bf16       -> resnet_stability.txt
#
# and a summary (summary.md, env.txt) in the output folder: the first
# argument, else $OUT, else ./gpu_check_out.
#
#   bash benchmarks/gpu_check.sh [OUTPUT_FOLDER]
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh /tmp/rehearsal   # every step, on a CPU machine
#
# Setup, offline first (the GPU machines here reach no package registry):
# Python is $PYTHON if set, else ./.venv/bin/python, else python3: the first
# whose torch sees CUDA. skebm is imported from this checkout when it is not
# installed; wheels in .whl/ (e.g. skorch, which the GPU image lacks:
# pip download --no-deps skorch==1.4.0 -d .whl, then carry .whl) are
# installed offline into a private folder. Only what is still missing then is
# installed from the network (pip install -c constraints.txt NAME..., as the
# Makefile's set-up does). With no CUDA-enabled Python at all but a GPU
# present, a fresh venv (.venv-gpu) is set up with
# pip install -c constraints.txt -e ".[dev]" and torchattacks --no-deps.
#
# Exit status: 0 when every step passed, and also when there is no GPU (the
# script then prints "no GPU" and checks nothing); 1 when a step failed or
# ran out of its time; 2 when no Python with CUDA-enabled torch and skebm's
# dependencies could be set up.
set -u
cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET=${GPU_CHECK_BUDGET:-470}   # seconds for everything, setup included (8 minutes, less a margin)
DEST=${1:-${OUT:-gpu_check_out}}
mkdir -p "$DEST"
SUMMARY="$DEST/summary.md"
echo "# GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))" > "$SUMMARY"

say() { echo "$*"; echo "$*" >> "$SUMMARY"; }

DEVICE=${GPU_CHECK_DEVICE:-cuda}  # GPU_CHECK_DEVICE=cpu: a rehearsal of every step on a CPU machine
if [ "$DEVICE" = cuda ]; then
    if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L 2> /dev/null | grep -q "^GPU"; then
        say "no GPU (nvidia-smi finds none): nothing to check here; run this script on a machine with a CUDA GPU."
        exit 0
    fi
    nvidia-smi > "$DEST/env.txt" 2>&1
else
    say "rehearsal on $DEVICE (GPU_CHECK_DEVICE=$DEVICE): the steps run, the gpu-marked tests skip"
    : > "$DEST/env.txt"
fi

cuda_python() {  # does "$1" import a torch that sees CUDA (in a rehearsal: any torch)?
    command -v "$1" > /dev/null 2>&1 \
        && "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() or '$DEVICE' != 'cuda' else 1)" \
            > /dev/null 2>&1
}
NEEDED="skebm sklearn skorch accelerate pytest scipy pandas tqdm matplotlib safetensors"
missing() {  # the modules of $NEEDED that "$1" cannot import
    "$1" -c "
import importlib.util, sys
print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))" $NEEDED 2> /dev/null
}

PY=""
for candidate in ${PYTHON:-} ./.venv/bin/python python3; do
    if cuda_python "$candidate"; then PY=$candidate; break; fi
done
if [ -z "$PY" ]; then
    say "setup: no Python with CUDA-enabled torch found; creating .venv-gpu (pip install -c constraints.txt -e \".[dev]\")"
    python3 -m venv .venv-gpu && .venv-gpu/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]" \
        && .venv-gpu/bin/python -m pip install --quiet --no-deps "torchattacks==3.5.1"
    if cuda_python .venv-gpu/bin/python; then PY=.venv-gpu/bin/python; fi
fi
if [ -z "$PY" ]; then
    say "setup FAILED: no Python whose torch sees the GPU (see above); nothing was checked."
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # skebm from this checkout unless installed
if ls .whl/*.whl > /dev/null 2>&1 && [ -n "$(missing "$PY")" ]; then
    SITE=${TMPDIR:-/tmp}/skebm-gpu-check-site
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:$SITE"
fi
if [ -n "$(missing "$PY")" ]; then
    say "setup: $PY lacks $(missing "$PY"); pip install -c constraints.txt (needs the network)"
    # shellcheck disable=SC2046
    "$PY" -m pip install --quiet -c constraints.txt $(missing "$PY" | sed 's/sklearn/scikit-learn/; s/skebm//')
fi
if [ -n "$(missing "$PY")" ]; then
    say "setup FAILED: $PY cannot import $(missing "$PY") (carry wheels in .whl/, see the top of this script)."
    exit 2
fi
"$PY" -c "
import torch, skebm, accelerate
gpu = f'{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}' if torch.cuda.is_available() else 'no GPU'
print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|', gpu, '| skebm', skebm.__version__,
      '| accelerate', accelerate.__version__)" | tee -a "$DEST/env.txt"
say "python: $PY ($(tail -1 "$DEST/env.txt")); setup took $((SECONDS - START)) s"
say ""
say "| step | status | seconds | output |"
say "|---|---|---|---|"

FAILED=0
step() {  # step NAME SECONDS OUTPUT_FILE COMMAND...: run with a time limit inside what is left of the budget
    local name=$1 limit=$2 out=$3; shift 3
    local left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt 20 ]; then
        say "| $name | SKIPPED (budget spent) | 0 | - |"; FAILED=1; return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$out" 2>&1
    local rc=$?
    local status="ok"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="TIMEOUT after ${limit} s"; FAILED=1
    elif [ $rc -ne 0 ]; then status="FAILED (exit $rc)"; FAILED=1; fi
    say "| $name | $status | $((SECONDS - t0)) | $(basename "$out") |"
}

export MPLBACKEND=Agg PYTHONWARNINGS=ignore
# 1. every gpu-marked test (the CUDA data-parallel test among them)
step "gpu-marked tests" 200 "$DEST/gpu_tests.txt" \
    "$PY" -m pytest -m gpu -q -p no:cacheprovider -rs --durations=10 --continue-on-collection-errors \
    --junitxml="$DEST/gpu_tests.xml"
# 2. the samplers side by side: bare loop, torchebm, ebmkit, skebm fp32 and bf16, and what precision="auto" picks on
#    this device (its own timing on CUDA); MLP, conv 8x8, 28x28 and 32x32 colour, ResNet 32x32
step "bench_langevin ($DEVICE)" 90 "$DEST/bench_langevin.md" "$PY" benchmarks/bench_langevin.py --device "$DEVICE" \
    $([ "$DEVICE" = cuda ] || echo --quick)
# 3. one short training benchmark per estimator, fp32 and bf16
step "training speed per estimator" 120 "$DEST/train_speed.txt" \
    "$PY" benchmarks/bench_scaling.py --quick --sections estimators --device "$DEVICE" --out "$DEST/train_speed.md"
# 4. the data-parallel tests: two processes on gloo (CPU) and the CUDA variant
step "data-parallel tests" 120 "$DEST/distributed.txt" \
    "$PY" -m pytest tests/test_distributed.py -q -p no:cacheprovider -rs --durations=5
# 5. every preset of skebm.presets: 5 updates as published (a CPU rehearsal shrinks them), then one answer
step "presets (5 updates each)" 120 "$DEST/presets.txt" \
    "$PY" benchmarks/bench_presets.py --device "$DEVICE" --updates 5 --out "$DEST/presets.md" \
    $([ "$DEVICE" = cuda ] || echo --quick)
# 6. ResNet 32x32 training stability, fp32 and bf16 (energies, gradient norms; a CPU cannot run it)
step "ResNet stability (fp32, bf16)" 120 "$DEST/resnet_stability.txt" \
    "$PY" benchmarks/bench_resnet_stability.py --max-iter 100 --out "$DEST/resnet_stability" \
    $([ "$DEVICE" = cuda ] || echo --quick)

say ""
say "total: $((SECONDS - START)) s of the ${BUDGET} s budget"
for f in bench_langevin.md train_speed.md presets.md; do
    if [ -s "$DEST/$f" ]; then { echo; echo "## $f"; echo; cat "$DEST/$f"; } >> "$SUMMARY"; fi
done
for f in gpu_tests.txt distributed.txt resnet_stability.txt; do
    if [ -s "$DEST/$f" ]; then { echo; echo "## $f (last lines)"; echo; echo '```'; tail -25 "$DEST/$f"; echo '```'; } >> "$SUMMARY"; fi
done
exit $FAILED
