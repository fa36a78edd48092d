#!/usr/bin/env bash
# The bare install: build skebm's wheel, install it into a fresh virtual
# environment with only its declared dependencies (no extras; torch through
# constraints.txt, the CPU build), and run every estimator's everyday path
# there (ci/bare_install_smoke.py), from outside the source tree so that the
# installed wheel, not the checkout, is imported. An import the core uses but
# pyproject.toml does not declare fails here. `make bare-install-check`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/skebm-bare.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bare install: building the wheel"
"$PYTHON" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet "setuptools>=68" wheel
"$work/build-env/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" .
wheel=$(ls "$work"/dist/skebm-*.whl)
echo "bare install: $(basename "$wheel") into a fresh environment (declared dependencies only)"
"$PYTHON" -m venv "$work/env"
"$work/env/bin/python" -m pip install --quiet -c constraints.txt "$wheel"
"$work/env/bin/python" -m pip list --format=freeze > "$work/installed.txt"
for extra in pytest mlxtend accelerate dask torchattacks sphinx; do
    if grep -qi "^$extra==" "$work/installed.txt"; then
        echo "bare install: $extra is installed, but no declared dependency should pull it" >&2
        exit 1
    fi
done
echo "bare install: $(wc -l < "$work/installed.txt") packages; running ci/bare_install_smoke.py"
smoke=$(pwd)/ci/bare_install_smoke.py
(cd "$work" && MPLBACKEND=Agg OMP_NUM_THREADS=1 PYTHONPATH= "$work/env/bin/python" "$smoke")
