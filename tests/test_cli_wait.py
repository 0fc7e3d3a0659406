"""`codexpc smoke` and `codexpc warmup` wait for a running daemon that is still loading its model.

A real daemon in a subprocess (test_daemon.DaemonProcess, started as test_loading does) whose
engine factory, a test double, sleeps before building the scripted engine; the commands run in
this process over its Unix socket. A failed load stops them with the daemon's reason.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_daemon import DaemonProcess
from test_loading import BROKEN, start_loading

from codexpc.cli.main import main as codexpc_main


def loading(process: DaemonProcess) -> str:
    """Start the daemon; its socket once it answers "loading"."""
    start_loading(process).close()
    return str(process.socket_path)


def test_smoke_waits_for_a_loading_test_double_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    process = DaemonProcess(load_s=2.0)
    try:
        sock = loading(process)
        started = time.monotonic()
        assert codexpc_main(["smoke", "--socket", sock]) == 0
        took = time.monotonic() - started
        out = capsys.readouterr().out
        assert "the daemon on" in out and "is still loading gpt-oss-20b" in out
        assert out.count("still loading") <= 2  # one line, then at most one every 5 s
        assert "waited" in out and "for its load" in out and "PASS" in out
        assert took < 10, took  # Retry-After is 3 s: the load plus at most one pause
    finally:
        process.close()


def test_smoke_for_another_checkpoint_does_not_wait_for_a_loading_test_double_daemon(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The loading daemon's /health names its checkpoint; smoke --checkpoint of another one starts
    its own daemon at once instead of waiting out a load it would not use."""
    (tmp_path / "theirs").mkdir()
    (tmp_path / "mine").mkdir()
    process = DaemonProcess(load_s=60.0, checkpoint=tmp_path / "theirs")
    try:
        sock = loading(process)
        started = time.monotonic()
        assert codexpc_main(["smoke", "--socket", sock, "--engine", "scripted", "--checkpoint",
                             str(tmp_path / "mine")]) == 0
        out = capsys.readouterr().out
        assert "still loading" not in out and "started a daemon for this run (checkpoint" in out
        assert time.monotonic() - started < 45
    finally:
        process.close()


def test_warmup_json_waits_with_its_notes_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    process = DaemonProcess(load_s=2.0)
    try:
        sock = loading(process)
        assert codexpc_main(["warmup", "--socket", sock, "--max-prompt-tokens", "16", "--json"]) == 0
        captured = capsys.readouterr()
        data = json.loads(captured.out)  # stdout: the one JSON document, nothing else
        assert data["ok"] and data["model"] == "gpt-oss-20b" and len(data["requests"]) == 1
        assert "is still loading gpt-oss-20b" in captured.err
    finally:
        process.close()


def test_smoke_stops_with_the_reason_of_a_failed_test_double_load(capsys: pytest.CaptureFixture[str]) -> None:
    process = DaemonProcess(load_s=1.0, toml=BROKEN)
    try:
        sock = loading(process)
        assert codexpc_main(["smoke", "--socket", sock, "--json"]) == 1
        captured = capsys.readouterr()
        error = json.loads(captured.out)["error"]
        assert "failed to load" in error["message"] and "/nonexistent/ckpt" in error["message"]
        assert "is still loading broken" in captured.err
    finally:
        process.close()
