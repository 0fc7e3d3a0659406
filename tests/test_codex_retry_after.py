"""The real Codex CLI against a full daemon: it honours our 429's Retry-After.

Observed with Codex 0.169 (and asserted here): on a 429 it prints "Reconnecting... n/5", waits
what Retry-After says (1 s here; 3 s when the header said 3), retries up to stream_max_retries
(5 by default) and then fails the turn with "exceeded retry limit, last status: 429 Too Many
Requests". So a short overload costs Codex a pause, not the turn.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import httpx
from test_codex_cli_e2e import codex_binary
from test_daemon import DaemonProcess

RETRY_AFTER_S = 1  # codexpc.errors.OverloadedError.retry_after_s


def codex_exec(home: Path, workdir: Path, port: int) -> subprocess.CompletedProcess[bytes]:
    """`codex exec --json` with the provider's default retry settings."""
    home.mkdir(parents=True)
    workdir.mkdir(parents=True)
    (home / "config.toml").write_text(
        'model = "gpt-oss-20b"\nmodel_provider = "codexpc"\ncheck_for_update_on_startup = false\n'
        "[analytics]\nenabled = false\n[model_providers.codexpc]\nname = \"codexpc\"\n"
        f'base_url = "http://127.0.0.1:{port}/v1"\nwire_api = "responses"\n'
    )
    nowhere = "http://127.0.0.1:9"  # nothing but loopback: see test_codex_cli_e2e.py
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "CODEX_HOME": str(home), "HTTP_PROXY": nowhere,
           "HTTPS_PROXY": nowhere, "ALL_PROXY": nowhere, "NO_PROXY": "127.0.0.1,localhost,::1", "RUST_LOG": "error"}
    command = [str(codex_binary()), "exec", "--json", "--skip-git-repo-check",
               "--dangerously-bypass-approvals-and-sandbox", "--cd", str(workdir), "Say hi."]
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)


def refusal_times(log: str) -> list[datetime]:
    """When the daemon answered 429 to /v1/responses (uvicorn's access log, one line each)."""
    stamps = re.findall(r"^(\S+ \S+) .*\"POST /v1/responses HTTP/1.1\" 429", log, re.M)
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in stamps]


def hold_the_slot(daemon: DaemonProcess) -> None:
    """One slow request; the daemon is killed under it at the end of the test."""
    with daemon.tcp_client() as client:
        try:
            client.post("/v1/responses", json={"input": "hi"}, timeout=60)
        except httpx.HTTPError:
            pass  # the daemon went away first


def test_codex_retries_a_429_after_its_retry_after_then_fails_the_turn_clearly(tmp_path: Path) -> None:
    codex_binary()
    # One request at a time, and a slow playback (~10 s) holding that one slot throughout.
    daemon = DaemonProcess(delay_s=0.3, toml="[limits]\nmax_in_flight = 1\n").start()
    try:
        assert daemon.port is not None
        holder = threading.Thread(target=hold_the_slot, args=(daemon,), daemon=True)
        holder.start()
        while "stream start" not in daemon.log():
            threading.Event().wait(0.05)
        done = codex_exec(tmp_path / "home", tmp_path / "work", daemon.port)
        out = done.stdout.decode()
        refusals = refusal_times(daemon.log())
    finally:
        daemon.close()
    assert done.returncode != 0 and '"turn.failed"' in out and "429 Too Many Requests" in out, out
    assert "Reconnecting... 5/5" in out
    assert len(refusals) == 6  # the first try and 5 retries
    gaps = [(b - a).total_seconds() for a, b in zip(refusals, refusals[1:], strict=False)]
    assert all(gap >= RETRY_AFTER_S * 0.9 for gap in gaps), gaps
