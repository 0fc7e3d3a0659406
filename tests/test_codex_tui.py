"""The real Codex TUI (0.169, under tmux) shows gpt-oss's reasoning: codexpc's titled summary.

Skips without tmux. The TUI runs in a throwaway HOME/CODEX_HOME and workdir against a daemon on
the scripted engine; the screen must show the summary's body as Codex's "thinking" block.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from codex_support import CodexDaemon, codex_env, codex_path, configure

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


# Not yet: the turn completes in the TUI, but 0.169 draws no reasoning block from the titled summary
# (exec --json does carry it, tests/test_codex_matrix.py). What the TUI needs is still to be found.
@pytest.mark.xfail(reason="the 0.169 TUI shows no reasoning block from codexpc's summary yet", strict=False)
def test_the_tui_shows_the_reasoning(tmp_path: Path) -> None:
    codex = codex_path("0.169.0")
    daemon = CodexDaemon().start()
    session = f"codexpc-tui-{time.monotonic_ns()}"
    try:
        assert daemon.port is not None
        home, work = tmp_path / "home", tmp_path / "work"
        work.mkdir()
        configure(home, daemon.port)
        (home / "config.toml").write_text((home / "config.toml").read_text()
                                          + f'\n[projects."{work}"]\ntrust_level = "trusted"\n')
        env = " ".join(f"{k}='{v}'" for k, v in codex_env(home).items())
        command = f"cd {work} && env -i {env} TERM=xterm-256color {codex} -p codexpc 'PLAIN show your thinking'"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True)
        screen, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True, check=False).stdout
            if "Done after 0 tool calls." in screen:
                break
        assert "Done after 0 tool calls." in screen, screen
        assert "The work is done. I will say what happened." in screen, screen  # the reasoning, shown
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
        daemon.close()
