# The two set-up commands of the README. Each works on a fresh machine with only Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output

.PHONY: install demo test lint bench clean

# torch is pinned first so pip takes the local CPU wheel (or the CUDA build on a GPU machine)
# and the project's `torch>=2.4` is then already satisfied.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/dvg demo --out $(DEMO_OUT)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/splat.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/geometry_accuracy.py --write docs/benchmarks.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
