"""Every command answers --help; the exit codes are the documented ones."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codexpc.cli.main import COMMAND_GROUPS, build_parser, main
from codexpc.errors import CheckpointError, ConfigError, DaemonNotRunning, VocabularyError

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["serve", "health", "status", "smoke", "warmup", "reload", "logs", "install", "uninstall",
            "codex-config", "checkpoint", "checkpoint write", "checkpoint inspect"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: codexpc " + command.replace("status", "health"))  # an alias
    assert len(out.splitlines()) > 3


def test_the_parser_lists_every_group() -> None:
    help_text = build_parser().format_help()
    for name in ("serve", "health", "smoke", "warmup", "reload", "logs", "install", "codex-config", "checkpoint"):
        assert name in help_text
    assert len(COMMAND_GROUPS) == 9


def test_exit_codes_follow_the_error_tree() -> None:
    assert [ConfigError.exit_code, VocabularyError.exit_code, CheckpointError.exit_code,
            DaemonNotRunning.exit_code] == [2, 3, 4, 5]


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "codexpc", "--version"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.startswith("codexpc ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(_subcommands(sub, prefix + name + " "))
    return found


def test_every_flag_says_what_it_does() -> None:
    # Issue 16, item 10: several flags (smoke --prompt, checkpoint write --size, ...) had no help.
    bare = [f"codexpc {name} {'/'.join(action.option_strings) or action.dest}"
            for name, sub in _subcommands(build_parser()).items()
            for action in sub._actions
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not action.help]
    assert bare == []


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    # Issue 16, item 6: `codexpc logs | head` printed "[Errno 32] Broken pipe" and exited 1.
    state = tmp_path / "state"
    state.mkdir()
    (state / "codexpc.log").write_text("".join(f"2026-12-04 10:00:00.000 [1] INFO codexpc: line {i}\n"
                                               for i in range(50_000)))
    env = {**os.environ, "CODEXPC_STATE_DIR": str(state), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "codexpc", "logs", "--source", "file"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"2026-12-04")  # what `head -1` reads, then it exits
    proc.stdout.close()
    assert proc.wait(60) == 0
    assert proc.stderr.read() == b""
