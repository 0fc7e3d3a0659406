"""The real Codex TUI, under tmux, shows gpt-oss's reasoning where Codex shows any model's reasoning.

What each version draws (read in Codex's source, checked here; docs/codex-reasoning.md):
- every version: while the model reasons, the status row above the composer shows it (0.140 the
  summary's `**title**`, 0.155+ the line being written), e.g. "• The work is done (1s • esc to
  interrupt)";
- 0.140: the finished summary stays in the history as a dim block;
- 0.155+: the history keeps no reasoning block for any model; the finished summary is in the
  transcript overlay (Ctrl+T).
With codexpc's profile the reasoning streams as a summary (codex-config writes
`model_reasoning_summary`); with summaries off, `show_raw_agent_reasoning = true` shows the raw
text in the same places.

The daemon runs the smallest limits a config allows (one request running, one waiting): the TUI
of 0.155+ sends a thread-title request beside each turn, and neither may be refused.
Skips without tmux (fails under CI=1). Each run takes a few seconds: the scripted tokens are slowed so that the
reasoning is on screen long enough to be seen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from codex_support import CodexDaemon, codex_env, codex_path, configure


@pytest.fixture(scope="module", autouse=True)
def _tmux() -> None:  # before the daemon starts
    if shutil.which("tmux") is not None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true"):  # as codex_path: CI must not skip silently
        pytest.fail("tmux is missing: CI must install it (apt-get install tmux)")
    pytest.skip("tmux is not installed")


REASONING = "The work is done. I will say what happened."  # the scripted analysis (codex_support)
ANSWER = "Done after 0 tool calls."
TOKEN_DELAY_S = 0.1  # the reasoning (~12 tokens) stays on screen for about a second
POLL_S = 0.1
Edit = Callable[[str], str]


@pytest.fixture(scope="module")
def daemon() -> Iterator[CodexDaemon]:
    process = CodexDaemon(delay_s=TOKEN_DELAY_S, toml="[limits]\nmax_in_flight = 1\nqueue_size = 1\n").start()
    yield process
    process.close()


class Tui:
    """One Codex TUI in a tmux server of its own (`-L`): no race with a server that is exiting
    after the last test's session, and nothing shared with anyone else's tmux."""

    def __init__(self, version: str, home: Path, work: Path, prompt: str) -> None:
        self.session = f"codexpc-tui-{time.monotonic_ns()}"
        self._tmux = ["tmux", "-L", self.session]
        env = " ".join(f"{k}='{v}'" for k, v in codex_env(home).items())
        command = f"cd {work} && env -i {env} TERM=xterm-256color {codex_path(version)} -p codexpc '{prompt}'"
        subprocess.run([*self._tmux, "new-session", "-d", "-s", self.session, "-x", "160", "-y", "50", command],
                       check=True)
        self.seen: list[str] = []  # every status row drawn while the turn ran

    def screen(self) -> str:
        return subprocess.run([*self._tmux, "capture-pane", "-p", "-t", self.session], capture_output=True, text=True,
                              check=False).stdout

    def wait(self, done: Callable[[str], bool], timeout: float = 60) -> str:
        """Poll the screen until `done`; remember the status rows on the way."""
        screen, deadline = "", time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            self.seen += [line.strip() for line in screen.splitlines() if "esc to interrupt" in line]
            if done(screen):
                return screen
            time.sleep(POLL_S)
        raise AssertionError(f"the TUI did not get there in {timeout} s:\n{screen}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self._tmux, "send-keys", "-t", self.session, *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], check=False, capture_output=True)
        socket = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.session
        socket.unlink(missing_ok=True)  # tmux leaves its socket file behind


def _home(tmp_path: Path, daemon: CodexDaemon, edit: Edit | None) -> tuple[Path, Path]:
    """Codex's folder as `codexpc codex-config` writes it, the workdir trusted (no first-run prompt)."""
    assert daemon.port is not None
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    configure(home, daemon.port)
    config = home / "config.toml"
    config.write_text(config.read_text() + f'\n[projects."{work}"]\ntrust_level = "trusted"\n')
    if edit is not None:
        profile = home / "codexpc.config.toml"
        profile.write_text(edit(profile.read_text()))
    return home, work


def _turn(version: str, daemon: CodexDaemon, tmp_path: Path, edit: Edit | None = None) -> tuple[Tui, str]:
    """One turn in the TUI: the session (still open) and the screen once the answer is drawn."""
    home, work = _home(tmp_path, daemon, edit)
    refused = daemon.log().count("admission refused")
    tui = Tui(version, home, work, "PLAIN show your thinking")
    try:
        screen = tui.wait(lambda s: ANSWER in s and "esc to interrupt" not in s)
    except BaseException:
        tui.close()
        raise
    assert daemon.log().count("admission refused") == refused, daemon.log()[-3000:]  # the title request waited
    return tui, screen


def _shown_while_reasoning(tui: Tui) -> None:
    rows = [row for row in tui.seen if "The work is done" in row]
    assert rows, f"the status row never showed the reasoning: {sorted(set(tui.seen))}"


def test_0_140_shows_the_reasoning_live_and_keeps_it_in_the_history(daemon: CodexDaemon, tmp_path: Path) -> None:
    tui, screen = _turn("0.140.0", daemon, tmp_path)
    try:
        _shown_while_reasoning(tui)
        assert REASONING in screen, screen  # the summary's body, under the title it was given
    finally:
        tui.close()


@pytest.mark.parametrize("version", ["0.169.0", "0.171.0"])
def test_the_reasoning_is_shown_live_and_in_the_transcript(version: str, daemon: CodexDaemon, tmp_path: Path) -> None:
    tui, screen = _turn(version, daemon, tmp_path)
    try:
        _shown_while_reasoning(tui)
        assert REASONING not in screen, screen  # no model's reasoning stays in 0.155+'s history...
        tui.keys("C-t")  # ...it is in the transcript overlay
        tui.wait(lambda s: REASONING in s, timeout=10)
    finally:
        tui.close()


def test_raw_reasoning_is_shown_when_summaries_are_off(daemon: CodexDaemon, tmp_path: Path) -> None:
    # No summary asked for: codexpc streams response.reasoning_text.*, which Codex shows only
    # with show_raw_agent_reasoning (a key the profile may hold, as this checks). Without that
    # key the status row says "Working" throughout (checked by hand: the test has teeth).
    summary = 'model_reasoning_summary = "detailed"'

    def raw(profile: str) -> str:
        assert summary in profile
        return profile.replace(summary, 'model_reasoning_summary = "none"\nshow_raw_agent_reasoning = true')

    tui, _ = _turn("0.169.0", daemon, tmp_path, raw)
    tui.close()
    _shown_while_reasoning(tui)
