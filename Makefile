# One command each: `make demo` (set up + main job), `make test` (set up + test suite).
# Set-up installs with constraints.txt, which pins the CPU build of torch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= results

.PHONY: setup demo test docs bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m skebm --out $(OUT)

test: setup
	$(PY) -m pytest -n 2 --durations=15

docs: setup
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: setup
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf docs/_build docs/auto_examples docs/generated $(OUT)
