"""`make setup`'s first run, as a fresh clone sees it, with a stand-in for python and pip.

The real first run downloads torch and every dependency (minutes, and the network); this drives
the Makefile's own recipe with a fake interpreter (its name says so) that prints what pip prints
on such a run, 83 lines of warnings and setuptools' editable-install block, as issue 16 saw.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREEN = 24  # lines of a terminal

FAKE_PYTHON = """#!/bin/sh
# A stand-in for python: `-m venv DIR` makes DIR/bin/python (this script), `-m pip` is noisy.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    i=0
    while [ $i -lt 83 ]; do echo "WARNING: pip noise line $i" >&2; i=$((i+1)); done
    [ -n "$FAIL_PIP" ] && { echo "ERROR: no matching distribution" >&2; exit 1; }
    exit 0
fi
exit 1  # `-c "import torch"`: not installed yet
"""


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "tests").mkdir()
    for name in ("Makefile", "pyproject.toml", "tests/codex_versions.txt"):  # what the Makefile reads
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, clone / name)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return clone


def _make_setup(clone: Path, **env: str) -> subprocess.CompletedProcess[str]:
    fake = clone.parent / "fake-python"
    return subprocess.run(["make", "setup", f"PY={fake}"], cwd=clone, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_first_setup_prints_its_steps_and_keeps_pips_log_in_a_file(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    result = _make_setup(clone)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = (result.stdout + result.stderr).splitlines()
    assert len(shown) <= 6 < SCREEN, shown
    assert "pip noise" not in result.stdout + result.stderr
    assert shown[-1].startswith("ready: the codexpc command is .venv/bin/codexpc")
    log = clone / ".venv" / "setup.log"
    assert log.read_text().count("pip noise line 82") == 3  # pip, torch, codexpc: every line kept
    assert (clone / ".venv" / ".installed-stamp").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_failed_step_shows_its_tail_and_where_the_log_is(tmp_path: Path) -> None:
    result = _make_setup(_clone(tmp_path), FAIL_PIP="1")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "ERROR: no matching distribution" in out and "the full log: .venv/setup.log" in out
    assert len(out.splitlines()) < 40
