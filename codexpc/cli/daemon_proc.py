"""A daemon started by the CLI for one command (smoke, bench): a child `codexpc serve`.

It listens only on a private Unix socket in a fresh folder, so it never collides with the
user's service (its socket or its port). It is stopped with SIGTERM when the command ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codexpc.cli.link import Link
from codexpc.errors import CodexpcError

STOP_TIMEOUT_S = 20.0
POLL_S = 0.1


@dataclass
class ChildDaemon:
    process: subprocess.Popen[bytes]
    socket_path: Path
    folder: Path  # holds the socket and the child's stderr
    load_s: float = 0.0

    @property
    def stderr_file(self) -> Path:
        return self.folder / "serve.stderr"

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self.stderr_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.process.returncode


def start(serve_args: Sequence[str], timeout_s: float, on_wait: Callable[[float], None] | None = None,
          keep_at: Path | None = None) -> ChildDaemon:
    """Start `codexpc serve` and wait until it answers; raise with its last words if it dies.

    keep_at: serve on the user's own socket (and TCP port) instead, in its own session so that
    it outlives this command: the next command finds it warm.
    """
    # A short folder name: a socket path must fit in 104 bytes on macOS.
    folder = Path(tempfile.mkdtemp(prefix="codexpc-"))
    os.chmod(folder, 0o700)
    sock = keep_at or folder / "s.sock"
    where = [] if keep_at else ["--socket", str(sock), "--no-tcp"]
    cmd = [sys.executable, "-m", "codexpc", "serve", *where, *serve_args]
    with open(folder / "serve.stderr", "wb") as err:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                   start_new_session=keep_at is not None)
    child = ChildDaemon(process, sock, folder)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        code = process.poll()
        if code is not None:
            tail = child.stderr_tail()
            child.stop()
            raise _died(code, tail)
        if ready(sock):
            child.load_s = elapsed
            return child
        if elapsed > timeout_s:
            tail = child.stderr_tail()
            child.stop()
            raise CodexpcError(f"the daemon did not answer within {timeout_s:.0f}s; its last words:\n{tail}")
        if on_wait is not None:
            on_wait(elapsed)
        time.sleep(POLL_S)


def ready(sock: Path) -> bool:
    """The daemon answers /health (a bound socket alone may still be loading the model)."""
    try:
        with Link(sock, timeout_s=2.0) as link:
            link.get("/health")
    except CodexpcError:
        return False
    return True


def _died(code: int, tail: str) -> CodexpcError:
    """Keep the child's own exit code (a bad checkpoint is 4, a bad setting 2)."""
    error = CodexpcError(f"the daemon exited with code {code} before answering:\n{tail}")
    if code > 0:
        error.exit_code = code
    return error
