# Two entry points: `make run` (the main job on the embedded model) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards; the install step re-runs only when
# pyproject.toml changes. `make test` also installs headless Chromium (Debian package `chromium`) when
# it is missing: the report tests render report.html in a real browser.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install chromium clean

run: $(STAMP)
	$(BIN)/gate ask "Who wrote Hamlet?"

test: $(STAMP) chromium
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

# apt-get as root directly (CI runs as root), through sudo otherwise; a no-op once chromium is on PATH.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
		else echo "chromium is missing; install the Debian package 'chromium' (needs root or sudo)" >&2; exit 1; fi; \
		echo "Installing chromium with apt-get (for the report's browser tests)"; \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

clean:
	rm -rf $(VENV)
