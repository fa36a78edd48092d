# One command each: `make demo` (set up + main job), `make test` (set up + test suite).
# Set-up installs with constraints.txt, which pins the CPU build of torch.
#
#   make test         the whole test suite
#   make test-fast    the suite without the tests marked @pytest.mark.slow (under 2 minutes)
#   make docs         the documentation, running every gallery example (warnings are errors)
#   make docs-fast    the documentation without running the examples (SKEBM_DOCS_FAST=1)
#   make bare-install-check  the wheel in a fresh venv with only its declared dependencies, every
#                     estimator's everyday path run there (ci/bare_install.sh, about 4 minutes)
#   make bench        every benchmarks/bench_*.py, full length
#   make bench-quick  every benchmark with --quick
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= results
PYTEST_WORKERS ?= 2
# torchattacks' metadata requires torchvision, which would pull a CUDA build of
# torch: it is installed apart, without its dependencies (it imports neither).
TORCHATTACKS ?= torchattacks==3.5.1

.PHONY: setup demo test test-fast docs docs-fast bare-install-check bench bench-quick clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "$(TORCHATTACKS)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m skebm --out $(OUT)

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15

test-fast: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" --durations=10

docs: setup
	$(PY) -m sphinx -n -W --keep-going -b html docs docs/_build/html

docs-fast: setup
	SKEBM_DOCS_FAST=1 $(PY) -m sphinx -n -W --keep-going -b html docs docs/_build/html

bare-install-check:
	PYTHON=$(PYTHON) ci/bare_install.sh

bench: setup
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

bench-quick: setup
	for f in benchmarks/bench_*.py; do $(PY) $$f --quick || exit 1; done

clean:
	rm -rf docs/_build docs/auto_examples docs/generated docs/gen_modules docs/api \
		docs/_api_index.rst docs/sg_execution_times.rst $(OUT)
