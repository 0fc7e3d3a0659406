"""Logging setup (journal or rotating file) and reading it back: --since, rotation, follow."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from codexpc import logs
from codexpc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_file_sink_outside_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEXPC_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert logs.setup("info") == str(tmp_path / "codexpc.log")
    logging.getLogger("codexpc.test").info("request id=r1 model=m done")
    text = (tmp_path / "codexpc.log").read_text()
    assert " INFO codexpc.test: request id=r1 model=m done" in text


def test_journal_sink_prefixes_priorities(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    assert logs.setup("debug") == "journal"
    logging.getLogger("codexpc.test").warning("slow load\nsecond line")
    err = capsys.readouterr().err
    assert "<4>WARNING codexpc.test: slow load\n<4>second line" in err


def test_parse_since() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0)
    assert logs.parse_since("10m", now) == now - timedelta(minutes=10)
    assert logs.parse_since("1d", now) == now - timedelta(days=1)
    assert logs.parse_since("2026-11-25 11:00", now) == datetime(2026, 11, 25, 11, 0)
    assert logs.journal_since("2h") == "-7200s"
    with pytest.raises(ConfigError, match="--since"):
        logs.parse_since("yesterday-ish", now)


def _line(when: datetime, text: str) -> str:
    return f"{when.strftime(logs.TIME_FORMAT)}.000 INFO codexpc: {text}\n"


def test_read_since_spans_rotated_files_and_keeps_tracebacks(tmp_path: Path) -> None:
    now = datetime.now()
    path = tmp_path / "codexpc.log"
    (tmp_path / "codexpc.log.1").write_text(_line(now - timedelta(hours=2), "old") + _line(now - timedelta(minutes=5), "rotated"))
    path.write_text(_line(now - timedelta(minutes=1), "boom") + "Traceback (most recent call last):\n  oops\n")
    lines = list(logs.read_file_since(path, now - timedelta(minutes=10)))
    assert [line.split(": ", 1)[-1] for line in lines] == ["rotated", "boom", "Traceback (most recent call last):", "  oops"]


def test_follower_survives_rotation_and_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "codexpc.log"
    path.write_text("before\n")
    follower = logs.Follower(path)
    follower.start_at_end()
    with path.open("a") as f:
        f.write("one\ntw")
    assert follower.poll() == ["one"]
    with path.open("a") as f:
        f.write("o\n")
    assert follower.poll() == ["two"]
    path.rename(tmp_path / "codexpc.log.1")
    path.write_text("fresh\n")
    assert follower.poll() == ["fresh"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEXPC_", "XDG_", "JOURNAL_", "DBUS_"))}
    return {**env, "HOME": str(tmp_path), "CODEXPC_STATE_DIR": str(tmp_path / "state")}


def _logs_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codexpc", "logs", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_logs_cli_reads_the_file_since(tmp_path: Path) -> None:
    env = _env(tmp_path)
    missing = _logs_cli(env)
    assert missing.returncode == 1 and "no log file" in missing.stderr
    state = tmp_path / "state"
    state.mkdir()
    now = datetime.now()
    (state / "codexpc.log").write_text(_line(now - timedelta(hours=1), "an hour ago") + _line(now, "just now"))
    result = _logs_cli(env, "--since", "10m")
    assert result.returncode == 0
    assert "just now" in result.stdout and "an hour ago" not in result.stdout
    assert _logs_cli(env, "--since", "soon").returncode == 2


def test_the_journal_is_read_when_the_systemd_service_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codexpc.cli.logs import choose_source
    from codexpc.service import systemd

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    # A systemd user manager cannot run here: say it does, as on a desktop.
    monkeypatch.setattr(systemd, "manager_problem", lambda: None)
    assert choose_source("auto") == "file"  # no unit installed: the daemon was run by hand
    systemd.unit_path().parent.mkdir(parents=True)
    systemd.unit_path().write_text("[Service]\n")
    expected = "journal" if shutil.which("journalctl") else "file"
    assert choose_source("auto") == expected
    assert choose_source("file") == "file"


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is not installed")
def test_journalctl_accepts_the_command() -> None:
    from codexpc.service import systemd

    cmd = systemd.logs_command(logs.journal_since("10m"), follow=False)
    assert cmd[-2:] == ["--since", "-600s"]
    # Without a journal here it finds no entries; what matters is that it parses every flag.
    result = subprocess.run([*cmd, "-n", "1"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_each_line_names_its_daemon_and_logs_keeps_one(tmp_path: Path) -> None:
    # Issue 16, item 9: every daemon of a user writes one file; on main no line said which.
    env = _env(tmp_path)
    script = ("import logging, os, sys; from codexpc import logs; logs.setup('info');"
              "log = logging.getLogger('codexpc.daemon'); log.info('hello from %d', os.getpid());"
              "log.error('boom', exc_info=ValueError('why')); print(os.getpid())")
    pids = []
    for _ in range(2):
        child = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, timeout=60, capture_output=True)
        assert child.returncode == 0, child.stderr
        pids.append(int(child.stdout))
    text = (tmp_path / "state" / "codexpc.log").read_text()
    for pid in pids:
        assert f"[{pid}] INFO codexpc.daemon: hello from {pid}" in text
    one = _logs_cli(env, "--pid", str(pids[1]), "--since", "10m")
    assert one.returncode == 0, one.stderr
    assert f"hello from {pids[1]}" in one.stdout and f"hello from {pids[0]}" not in one.stdout
    assert one.stdout.count("ValueError: why") == 1  # the traceback's lines go with their record


def test_journal_filter_by_pid() -> None:
    from codexpc.service import systemd

    assert "_PID=42" in systemd.logs_command(None, follow=False, pid=42)
