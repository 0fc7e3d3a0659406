"""Every command answers --help; the exit codes are the documented ones."""

from __future__ import annotations

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
