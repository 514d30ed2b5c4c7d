# Two entry points: `make run` (the main job on the embedded model) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards; the install step re-runs only when
# pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

run: $(STAMP)
	$(BIN)/gate ask "Who wrote Hamlet?"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

install: $(STAMP)

# torch 2.13.0 first and explicitly: it is the CPU build sentence-transformers then accepts
# (any other torch request pulls a multi-GB CUDA build). llama-cpp-python compiles once (~4 min).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[local,dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV)
