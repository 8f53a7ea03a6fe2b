# Two commands do all the set-up from a fresh clone:
#   make demo   the main job: synthetic dataset -> train -> predict -> calibration report
#   make test   lint + the whole test suite (what CI runs)
# and, for quick checks while editing:
#   make test-fast   lint + the suite without the tests marked `slow` (end-to-end runs of nnU-Net's commands)
#   make test-cuda   the CUDA suite alone (tests/cuda, marker `cuda`), on a machine with an NVIDIA GPU
# All create ./.venv first (torch 2.14.1 + torchvision 0.29.1, then this package with its test extras).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output

.PHONY: demo test test-fast test-cuda lint venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: venv
	$(BIN)/nnunet-surgery demo -o $(DEMO_OUT)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

test-cuda: venv
	$(BIN)/python -m pytest -m cuda tests/cuda
