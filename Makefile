# codexpc: every command a user or CI needs. `make test` works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODEX_VERSION := 0.169.0
CODEX := .cache/codex/node_modules/.bin/codex
TYPED := codexpc/harmony codexpc/vocab.py codexpc/settings.py codexpc/errors.py codexpc/engine/api.py

.PHONY: setup test check lint types pytest smoke codex-cli

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch; a plain `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

$(CODEX):
	mkdir -p .cache/codex
	npm install --silent --no-audit --no-fund --prefix .cache/codex @openai/codex@$(CODEX_VERSION)

codex-cli: $(CODEX)

lint: setup
	$(BIN)/ruff check codexpc tests bench scripts

types: setup
	$(BIN)/mypy $(TYPED)

pytest: setup codex-cli
	$(BIN)/python -m pytest -q

# The one command that runs every check: lint, types, tests.
test: lint types pytest

check: test

smoke: setup
	$(BIN)/codexpc smoke $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)
