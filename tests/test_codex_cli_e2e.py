"""The real Codex CLI (npm @openai/codex, pinned in the Makefile) against a real daemon.

1. On the scripted engine: Codex asks, the model calls `exec_command`, Codex runs it and sends
   the reasoning and the command's output back, the model answers, Codex prints the answer.
2. On the paged engine with a tiny random checkpoint: constrained decoding keeps whatever the
   model emits well-formed, so no response fails; Codex gets a well-formed stream and the daemon
   stays up.

`make codex-cli` installs the binary. Without it the test skips, except in CI, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from test_daemon import DaemonProcess

REPO = Path(__file__).resolve().parent.parent
CODEX = REPO / ".cache" / "codex" / "node_modules" / ".bin" / "codex"
CODEX_TIMEOUT_S = 120
PROMPT = "Run a command that prints something, then tell me what it printed."
SCRIPTED_OUTPUT = "codexpc-scripted"  # what the scripted model's command prints


def codex_binary() -> Path:
    if CODEX.exists():
        return CODEX
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"the Codex CLI is missing at {CODEX}: CI must run `make codex-cli` first")
    pytest.skip(f"the Codex CLI is not installed at {CODEX} (run `make codex-cli`)")


def run_codex(
    home: Path, workdir: Path, port: int, model: str = "gpt-oss-20b", token: str | None = None
) -> list[dict]:
    """`codex exec --json` with a provider entry pointing at the daemon; its JSONL events."""
    home.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "codexpc"\n'
        "check_for_update_on_startup = false\n"
        "[analytics]\nenabled = false\n"
        "[model_providers.codexpc]\n"
        'name = "codexpc"\n'
        f'base_url = "http://127.0.0.1:{port}/v1"\n'
        'wire_api = "responses"\n'
        "stream_max_retries = 0\n"
        "request_max_retries = 0\n"
        + ('env_key = "CODEXPC_TOKEN"\n' if token else "")  # sent as a bearer token
    )
    # Only loopback: anything Codex tries elsewhere goes to a proxy port where nothing listens.
    # (0.169 tries github.com, api.github.com and chatgpt.com, all through the proxy variables.)
    nowhere = "http://127.0.0.1:9"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "HTTP_PROXY": nowhere,
        "HTTPS_PROXY": nowhere,
        "ALL_PROXY": nowhere,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "RUST_LOG": "error",
        **({"CODEXPC_TOKEN": token} if token else {}),
    }
    command = [
        str(codex_binary()), "exec", "--json", "--skip-git-repo-check",
        # The only command the scripted model asks for is `echo`, in a throwaway folder;
        # CI machines often lack the Linux sandbox's prerequisites.
        "--dangerously-bypass-approvals-and-sandbox",
        "--cd", str(workdir), PROMPT,
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=CODEX_TIMEOUT_S, check=False
    )
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    assert events, f"codex printed no events (rc {done.returncode}):\n{done.stderr.decode()[-3000:]}"
    return events


def items(events: list[dict], kind: str) -> list[dict]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


def test_codex_runs_the_scripted_tool_call_and_prints_the_answer(tmp_path: Path) -> None:
    codex_binary()
    capture = tmp_path / "capture"
    token = "codex-e2e-token-0123456789abcdef"
    daemon = DaemonProcess(toml=f'capture_dir = "{capture}"', token=token).start()
    try:
        assert daemon.port is not None
        events = run_codex(tmp_path / "home", tmp_path / "work", daemon.port, token=token)
        commands = items(events, "command_execution")
        assert commands and SCRIPTED_OUTPUT in commands[0]["command"]
        assert commands[0]["exit_code"] == 0 and SCRIPTED_OUTPUT in commands[0]["aggregated_output"]
        messages = items(events, "agent_message")
        assert messages and SCRIPTED_OUTPUT in messages[-1]["text"]
        assert events[-1]["type"] == "turn.completed"

        requests = sorted(capture.glob("*-v1_responses.json"))
        assert len(requests) == 2, daemon.log()
        first, second = (json.loads(p.read_text()) for p in requests)
        assert first["stream"] is True and any(t.get("name") == "exec_command" for t in first["tools"])
        passed_back = {item["type"]: item for item in second["input"] if "type" in item}
        reasoning = passed_back["reasoning"]["content"][0]["text"]
        assert "I will run a command" in reasoning
        call, output = passed_back["function_call"], passed_back["function_call_output"]
        assert call["name"] == "exec_command" and output["call_id"] == call["call_id"]
        assert SCRIPTED_OUTPUT in output["output"]
        assert daemon.log().count("harmony append tokens=") == 2
    finally:
        daemon.close()


@pytest.mark.slow  # a CPU prefill of Codex's ~7k-token prompt: about 15 s
@pytest.mark.parametrize("engine", ["paged"])
def test_codex_against_a_tiny_random_checkpoint_gets_a_well_formed_stream(tmp_path: Path, engine: str) -> None:
    codex_binary()
    from codexpc.checkpoint import write_checkpoint
    from codexpc.engine.model_config import TINY

    checkpoint = write_checkpoint(TINY, "original", tmp_path / "tiny", seed=0)
    toml = (
        "[limits]\nmax_output_tokens = 16\ndefault_max_output_tokens = 16\n"
        f'[models."tiny"]\nengine = "{engine}"\ncheckpoint = "{checkpoint}"\n'
    )
    daemon = DaemonProcess(toml=f'default_model = "tiny"\ndevice = "cpu"\n{toml}')
    daemon.start()
    try:
        assert daemon.port is not None
        events = run_codex(tmp_path / "home", tmp_path / "work", daemon.port, model="tiny")
        kinds = {e["type"] for e in events}
        # The 16-token limit ends most turns incomplete; by chance one completes: never a hang.
        assert kinds & {"turn.completed", "turn.failed", "error"}, events
        log = daemon.log()
        assert "constrained=yes" in log, log
        ends = [line for line in log.splitlines() if " end reason=" in line]
        # Constrained, random weights never break Harmony: no response fails.
        assert ends and all(re.search(r"status=(incomplete|completed)", line) for line in ends), log
        with daemon.unix_client() as unix:  # the daemon is still up and serving
            assert unix.get("/health").json()["engine"]["kind"] == engine
    finally:
        daemon.close()
