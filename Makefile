# Two entry points: `make run` (the main job on the embedded model) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards; the install step re-runs only when
# pyproject.toml changes. `make test` also installs headless Chromium (Debian package `chromium`) when
# it is missing: the report tests render report.html in a real browser; and `redis-server` (Debian package
# `redis-server`): the shared-state tests start their own on a free loopback port, never the system's one; and
# `haproxy` (Debian package `haproxy`): the multi-replica test puts three replicas behind one it starts itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install chromium redis-server haproxy clean

run: $(STAMP)
	$(BIN)/gate ask "Who wrote Hamlet?"

test: $(STAMP) chromium redis-server haproxy
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

install: $(STAMP)

# llama.cpp is compiled for a portable x86-64 instruction set (AVX2, FMA, F16C, BMI2; no AVX-512, no AMX)
# instead of the build machine's own: the same kernels, and so the same answers, on AMD and Intel, and none
# of ggml's AMX path, which segfaults on first decode on Sapphire Rapids (llama.cpp issue 20824).
# Elsewhere (ARM) llama.cpp's defaults apply.
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
	-DGGML_AMX_BF16=OFF)

# torch 2.13.0 first and explicitly: it is the CPU build sentence-transformers then accepts
# (any other torch request pulls a multi-GB CUDA build). llama-cpp-python compiles once (~4 min), with
# --no-cache-dir so that a wheel built earlier with other flags and kept in pip's cache is not reused.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir "llama-cpp-python>=0.3.36"
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

# The same way for redis-server: the tests run the binary in a temporary directory (no service is started
# or needed); a no-op once redis-server is on PATH.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
		else echo "redis-server is missing; install the Debian package 'redis-server' (needs root or sudo)" >&2; exit 1; fi; \
		echo "Installing redis-server with apt-get (for the shared-state tests)"; \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; \
	fi

# And for haproxy: tests/test_scale_replicas.py runs the binary with a generated copy of deploy/haproxy.cfg on
# free loopback ports (the package's own service is neither needed nor used); a no-op once haproxy is on PATH.
haproxy:
	@if ! command -v haproxy >/dev/null 2>&1; then \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
		else echo "haproxy is missing; install the Debian package 'haproxy' (needs root or sudo)" >&2; exit 1; fi; \
		echo "Installing haproxy with apt-get (for the multi-replica test)"; \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	fi

clean:
	rm -rf $(VENV)
