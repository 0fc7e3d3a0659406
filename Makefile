# codexpc: every command a user or CI needs. `make test` works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODEX_VERSION := 0.169.0
CODEX := .cache/codex/node_modules/.bin/codex
# The versions the Codex matrix runs (tests/test_codex_matrix.py), pinned in one file.
CODEX_VERSIONS := $(shell grep -E '^[0-9]+\.[0-9]+\.[0-9]+$$' tests/codex_versions.txt)
CODEX_MATRIX := $(foreach v,$(CODEX_VERSIONS),.cache/codex-$(v)/node_modules/.bin/codex)
TYPED := codexpc/harmony codexpc/vocab.py codexpc/settings.py codexpc/errors.py codexpc/engine/api.py \
	codexpc/cli codexpc/service codexpc/logs.py codexpc/codex_config.py codexpc/config \
	codexpc/server codexpc/checkpoint codexpc/engine/model.py codexpc/engine/mxfp4.py codexpc/engine/sequence_kv.py \
	codexpc/engine/sampling.py codexpc/engine/weights.py codexpc/engine/factory.py \
	codexpc/engine/threaded_generation.py codexpc/engine/model_config.py \
	codexpc/engine/paged codexpc/engine/kernels codexpc/codex_catalog.py codexpc/engine/vllm codexpc/engine/mlx \
	codexpc/store codexpc/constrain codexpc/engine/speculative

# The CLI as the venv runs it (works before and after the `codexpc` script is installed).
CODEXPC := $(BIN)/python -m codexpc
LAST ?= 10m
MODEL ?= gpt-oss-20b
PROMPT ?= Run the shell command echo codexpc, then tell me what it printed.
BENCH ?= baseline
BENCH_ARGS ?=
# The daemon's TCP port as codexpc's own config sees it (file, CODEXPC_PORT, default 8787).
PORT = $(shell $(BIN)/python -c "from codexpc.config import load_config; print(load_config().listen.port)")

.PHONY: tmux train-tiny setup test check lint types pytest smoke codex-cli serve install link uninstall health logs reload \
	warmup codex-config codex-test bench

# The first run's output is one line per step; pip's full log (its warnings, setuptools'
# editable-install notes) goes to SETUP_LOG, and only a failure shows its tail.
SETUP_LOG := $(VENV)/setup.log
LOGGED = >>$(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make setup failed; the full log: $(SETUP_LOG)"; exit 1; }

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (a few minutes the first time; pip's full log: $(SETUP_LOG))"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@: > $(SETUP_LOG)
	@echo "  [1/3] pip"
	@$(BIN)/python -m pip install --upgrade pip $(LOGGED)
	@echo "  [2/3] torch (the CPU build)"
	@# The CPU build of torch; a plain `torch` requirement would pull a multi-GB CUDA build.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install torch==2.13.0 $(LOGGED)
	@echo "  [3/3] codexpc and its dependencies"
	@$(BIN)/python -m pip install -e '.[test]' $(LOGGED)
	@touch $@
	@echo "ready: the codexpc command is $(BIN)/codexpc; \`make install\` (or \`make link\`) puts it on your PATH"

setup: $(STAMP)

$(CODEX):
	mkdir -p .cache/codex
	npm install --silent --no-audit --no-fund --prefix .cache/codex @openai/codex@$(CODEX_VERSION)

.cache/codex-%/node_modules/.bin/codex:
	mkdir -p .cache/codex-$*
	npm install --silent --no-audit --no-fund --prefix .cache/codex-$* @openai/codex@$*

codex-cli: $(CODEX) $(CODEX_MATRIX) tmux

# The Codex TUI test drives the real TUI under tmux; a fresh machine may lack it (Debian's package).
tmux:
	@command -v tmux >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q tmux >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q tmux >/dev/null)); } \
	  || echo "tmux is missing and could not be installed: the Codex TUI test will fail under CI"

lint: setup
	$(BIN)/ruff check codexpc tests bench $(wildcard scripts)

types: setup
	$(BIN)/mypy $(TYPED)

pytest: setup codex-cli
	$(BIN)/python -m pytest -q

# The one command that runs every check: lint, types, tests.
test: lint types pytest

check: test

# One streaming request end to end: the running daemon if there is one, else a daemon started
# for the run on CHECKPOINT=... or on a tiny random checkpoint (built once, cached). KEEP=1
# leaves that daemon running, so the next smoke (or Codex) finds it warm.
smoke: setup
	@$(CODEXPC) smoke $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),) $(if $(KEEP),--keep,)

# --- operating the daemon (the old macOS runbook's targets) ---------------------------------

serve: setup
	$(CODEXPC) serve $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)

# The user service (systemd or launchd) and the `codexpc` command in ~/.local/bin, then Codex
# pointed at it.
install: setup
	$(CODEXPC) install $(if $(CHECKPOINT),--checkpoint $(abspath $(CHECKPOINT)),)
	$(CODEXPC) codex-config

# Only the `codexpc` command on the PATH (a link in ~/.local/bin), no service.
link: setup
	@$(CODEXPC) install --command-only

uninstall: setup
	$(CODEXPC) uninstall

health: setup
	$(CODEXPC) health

logs: setup
	$(CODEXPC) logs --since $(LAST)

reload: setup
	$(CODEXPC) reload

warmup: setup
	$(CODEXPC) warmup --wait 600

codex-config: setup
	$(CODEXPC) codex-config

# The real Codex CLI against the running daemon, configured by -c flags only: the user's
# ~/.codex is neither read for the provider nor changed.
codex-test: setup codex-cli
	$(CODEXPC) health
	$(CODEX) exec --skip-git-repo-check --json \
		-c model_provider=codexpc \
		-c 'model_providers.codexpc={name="codexpc",base_url="http://127.0.0.1:$(PORT)/v1",wire_api="responses"}' \
		-m $(MODEL) "$(PROMPT)" </dev/null | tee .cache/codex-test.jsonl
	grep -q '"type":"turn.completed"' .cache/codex-test.jsonl

# BENCH=baseline|fast_engine|decoder_throughput; on a CPU: make bench BENCH_ARGS="--size tiny"
bench: setup
	$(BIN)/python bench/$(BENCH).py $(BENCH_ARGS)

# Train the tiny Harmony-speaking model into the cache (minutes on a CPU; see docs/trained-tiny.md).
train-tiny: setup
	$(BIN)/python -m codexpc.train
