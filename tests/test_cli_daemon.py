"""The CLI against a real daemon started with `codexpc serve` (scripted engine: no weights here).

One daemon serves the whole module: it is started over a stale socket file, as a crash leaves
behind, which `serve` must replace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READY_S = 90.0  # importing torch on a busy 2-core machine


def user_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEXPC_", "XDG_", "JOURNAL_", "DBUS_", "CODEX_"))}
    home = folder / "home"
    runtime = folder / "run"
    home.mkdir(exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {**env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(home / ".config"),
            "CODEXPC_STATE_DIR": str(folder / "state"), "CODEXPC_CACHE_DIR": str(folder / "cache")}


def codexpc(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codexpc", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def leave_stale_socket(path: Path) -> None:
    """What a crashed daemon leaves: a socket file that nothing listens on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


class Served:
    def __init__(self, folder: Path) -> None:
        self.env = user_env(folder)
        # The default socket of this user: commands find it without --socket.
        self.socket = folder / "run" / "codexpc" / "codexpc.sock"
        leave_stale_socket(self.socket)
        self.stderr = (folder / "serve.stderr").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codexpc", "serve", "--engine", "scripted", "--port", "0"],
            env=self.env, stdout=self.stderr, stderr=self.stderr, cwd=ROOT,
        )
        deadline = time.monotonic() + READY_S
        while codexpc(self.env, "health").returncode != 0:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "the daemon did not become healthy"
            time.sleep(0.5)

    def output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    daemon = Served(tmp_path_factory.mktemp("cli"))
    yield daemon
    if daemon.proc.poll() is None:
        daemon.stop()


def test_health_reports_the_model(served: Served) -> None:
    human = codexpc(served.env, "health")
    assert human.returncode == 0
    assert "codexpc is running" in human.stdout and "gpt-oss-20b" in human.stdout
    data = json.loads(codexpc(served.env, "health", "--json").stdout)
    assert data["running"] is True and data["engine"]["kind"] == "scripted"


def test_smoke_against_a_warm_daemon_is_immediate(served: Served) -> None:
    started = time.monotonic()
    result = codexpc(served.env, "smoke")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "using the running daemon" in result.stdout and "no load" in result.stdout
    assert "response.output_text.delta" in result.stdout and "time to first token" in result.stdout
    assert "PASS" in result.stdout
    assert elapsed < 20  # the CLI's own start; no model load


def test_smoke_json_has_the_figures(served: Served) -> None:
    data = json.loads(codexpc(served.env, "smoke", "--json").stdout)
    assert data["ok"] and data["warm"] and data["outcome"] == "response.completed"
    assert data["ttft_s"] > 0 and data["tokens_per_s"] > 0 and data["output_tokens"] > 0
    assert data["text"]


def test_warmup_runs_growing_prompts(served: Served) -> None:
    data = json.loads(codexpc(served.env, "warmup", "--max-prompt-tokens", "1024", "--json").stdout)
    assert data["ok"] and [r["prompt_tokens"] for r in data["requests"]] == [16, 1024]


def test_reload_keeps_serving(served: Served) -> None:
    result = codexpc(served.env, "reload", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reloaded"] is True
    assert json.loads(codexpc(served.env, "health", "--json").stdout)["reloads"] == 1


def test_logs_show_the_requests(served: Served) -> None:
    result = codexpc(served.env, "logs", "--since", "10m")
    assert result.returncode == 0
    assert "INFO" in result.stdout


CODEX = ROOT / ".cache" / "codex" / "node_modules" / ".bin" / "codex"


@pytest.mark.skipif(not CODEX.exists(), reason="the Codex CLI is not installed (make codex-cli)")
def test_codex_dash_p_codexpc_works_after_codex_config(served: Served, tmp_path: Path) -> None:
    log = Path(served.env["CODEXPC_STATE_DIR"]) / "codexpc.log"
    port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text()).group(1)
    env = {**served.env, "CODEX_HOME": str(tmp_path / "codex-home")}
    assert codexpc(env, "codex-config", "--port", port).returncode == 0
    # The user's way in: the profile that codex-config wrote, nothing else.
    run = subprocess.run([str(CODEX), "exec", "-p", "codexpc", "--skip-git-repo-check", "--json", "Say hello"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, run.stderr[-2000:]
    assert any(e["type"] == "turn.completed" for e in events)
    assert any(e.get("item", {}).get("type") == "agent_message" for e in events)


def test_a_second_serve_on_the_same_socket_fails_clearly(served: Served) -> None:
    result = codexpc(served.env, "serve", "--engine", "scripted", "--port", "0", timeout=90)
    assert result.returncode == 2
    assert str(served.socket) in result.stderr


def test_sigterm_stops_it_and_health_says_no_daemon(served: Served) -> None:
    assert served.stop() == 0
    result = codexpc(served.env, "health")
    assert result.returncode == 5
    assert "no daemon is running" in result.stdout
