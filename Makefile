# lrscope: `make demo` (the lesson, NumPy only) and `make test` (every framework, every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
KERAS_BACKENDS := tensorflow jax torch

.PHONY: demo test lint bench chromium clean

# A stamp per install level, so re-running is instant and an edit of the deps re-installs.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[demo]'
	touch $@

$(VENV)/.all-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[all]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/lrscope demo

# Headless Chromium (Debian package) for the report's browser test.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)/.all-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Keras tests run once per backend, each in its own process (the backend is fixed at import).
# pytest's exit code 5 ("no tests collected") is accepted there only.
test: $(VENV)/.all-installed chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not keras"
	@for backend in $(KERAS_BACKENDS); do \
	  echo "== Keras tests, KERAS_BACKEND=$$backend"; \
	  KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -m keras -p no:cacheprovider; \
	  code=$$?; [ $$code -eq 0 ] || [ $$code -eq 5 ] || exit $$code; \
	done

bench: $(VENV)/.all-installed
	@for script in benchmarks/bench_*.py; do \
	  [ -e "$$script" ] || continue; echo "== $$script"; $(BIN)/python "$$script" || exit 1; \
	done

clean:
	rm -rf $(VENV) lrscope-demo .pytest_cache .ruff_cache .mypy_cache

# Peer LR finders (torch-lr-finder, fastai, Lightning) in their own venv, .venv-bench, for
# benchmarks/bench_torch.py (which reports them as "not installed" without it).
.PHONY: bench-peers
bench-peers:
	bash benchmarks/peers/setup.sh
