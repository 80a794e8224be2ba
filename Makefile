# The two set-up commands of the README. Each works on a fresh machine with only Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output
MICRO_OUT ?= micro_output

.PHONY: install demo test lint bench reproduce-micro gpu-wheels gpu-smoke clean

# torch is pinned first so pip takes the local CPU wheel (or the CUDA build on a GPU machine)
# and the project's `torch>=2.4` is then already satisfied.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The bundled example: a procedural scene rendered with exact sidecar depth, turned into
# shards by `dvg build` with the weights-free offline preset, then summarised and previewed.
demo: install
	$(BIN)/dvg synth example --out $(DEMO_OUT)/videos
	$(BIN)/dvg build --preset offline --keep-disparity --videos $(DEMO_OUT)/videos \
		--out $(DEMO_OUT)/shards
	$(BIN)/dvg inspect $(DEMO_OUT)/shards
	$(BIN)/dvg preview $(DEMO_OUT)/shards --out $(DEMO_OUT)/preview.png --frames 3 \
		--video $(DEMO_OUT)/preview.mp4

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m benchmarks.splat --write docs/benchmarks.md
	$(BIN)/python benchmarks/geometry_accuracy.py --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.dvg --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.train --stage 1 --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.train --stage 2 --write docs/benchmarks.md

# The micro reproduction (docs/evaluation.md, "micro"): rendered videos -> dvg build -> stage 0
# VAE -> stage 1 -> stage 2 (+ ablations) -> export -> held-out evaluation against exact ground
# truth, 27-30 minutes on two idle CPU cores; $(MICRO_OUT)/report.md has the figures.
reproduce-micro: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m benchmarks.micro --scale cpu \
		--out $(MICRO_OUT) --overwrite

# The GPU run (docs/benchmarks.md, "GPU run"): the wheels the GPU machine lacks, for its Python
# 3.12, with their size against the device tool's 64 MiB upload limit. Needs only python3 + pip.
gpu-wheels:
	$(PYTHON) -m benchmarks.gpu.wheels --dest .gpu-wheels

# The same run with tiny sizes on this CPU (what tests/benchmarks/test_gpu_run.py runs).
gpu-smoke: install
	OUT=gpu_smoke PYTHON=$(BIN)/python bash benchmarks/gpu/run.sh --smoke

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(MICRO_OUT) .pytest_cache .ruff_cache gpu_smoke
