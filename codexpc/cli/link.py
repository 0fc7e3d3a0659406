"""The CLI's line to a running daemon: JSON calls and a timed SSE stream over the Unix socket.

"No daemon" is one clear error (DaemonNotRunning, exit code 5) whether the socket file is
missing or is a stale file left by a daemon that crashed. The socket, the HTTP client and the
reading of answers are codexpc.server.client's; this module adds the CLI's errors and timings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from codexpc.errors import CodexpcError, DaemonNotRunning
from codexpc.server.client import error_of, http_timeout, probe, sse_data, unix_http

CALL_TIMEOUT_S = 30.0
LOAD_WAIT_S = 600.0  # loading a 120b checkpoint from a cold disk takes minutes
WAIT_NOTE_S = 5.0  # a wait for a load says how long it has waited at most this often
STREAM_IDLE_TIMEOUT_S = 300.0  # what Codex allows too
START_HINT = "start one: `codexpc serve` (foreground) or `codexpc install` (the user service)"

__all__ = ["Link", "SseEvent", "add_daemon_flags", "probe", "request_body", "socket_from_args", "wait_for_load"]


def add_daemon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="config file naming the daemon's socket")
    p.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's Unix socket")


def socket_from_args(args: argparse.Namespace) -> Path:
    """--socket, else the config file's listen.socket, else the default.

    A client command needs only the socket from the file: while a daemon answers there, the
    rest of the file is not its business (a line on stderr says that the file has problems).
    When none answers, the whole file is checked, since a broken file is then the likelier
    reason and the more useful error (exit 2).
    """
    if getattr(args, "socket", None):
        return Path(args.socket)
    from codexpc.cli.output import warn
    from codexpc.config import client_socket, load_config
    from codexpc.errors import ConfigError

    config_file = getattr(args, "config", None)
    path, problem = client_socket(config_file)
    if problem is not None:
        warn(f"warning: {problem}")
    if probe(path) is not None:
        load_config(config_file, {})
        return path
    try:
        load_config(config_file, {})
    except ConfigError as exc:
        first = str(exc).splitlines()[0].rstrip(":")
        warn(f"warning: {first} (the running daemon is not affected until it restarts)")
    return path


def request_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    # The shape Codex sends, cut down to one user message.
    return {
        "model": model,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}],
        "stream": True,
        "store": False,
        "max_output_tokens": max_tokens,
        "reasoning": {"effort": "low", "summary": "auto"},
    }


@dataclass(frozen=True)
class SseEvent:
    name: str  # the event's `type`
    data: dict[str, Any]
    at: float  # seconds since the request was sent


class Link:
    """Calls over the daemon's Unix socket; no daemon is DaemonNotRunning, a bad answer CodexpcError."""

    def __init__(self, socket_path: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        problem = probe(socket_path)
        if problem is not None:
            raise DaemonNotRunning(f"{problem}; {START_HINT}")
        self.http = unix_http(socket_path, timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            message, _ = error_of(response)
            raise CodexpcError(f"the daemon answered {response.status_code}: {message}")

    def get(self, path: str) -> dict[str, Any]:
        try:
            response = self.http.get(path)
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon at {self.socket_path} did not answer: {exc}") from None
        self._check(response)
        body: dict[str, Any] = response.json()
        return body

    def post(self, path: str, body: dict[str, Any], timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        try:
            response = self.http.post(path, json=body, timeout=http_timeout(timeout_s))
        except httpx.TransportError as exc:
            raise CodexpcError(f"{path} failed: {exc}") from None
        self._check(response)
        result: dict[str, Any] = response.json()
        return result

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[SseEvent]:
        """POST a streaming request; yield each SSE event with its arrival time."""
        start = time.monotonic()
        idle = http_timeout(STREAM_IDLE_TIMEOUT_S)
        try:
            with self.http.stream("POST", path, json=body, timeout=idle) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for data in sse_data(response.iter_lines()):
                    yield SseEvent(str(data.get("type", "")), data, time.monotonic() - start)
        except httpx.TransportError as exc:
            raise CodexpcError(f"the stream from {path} broke: {exc}") from None


def wait_for_load(socket_path: Path, timeout_s: float, note: Callable[[str], None]) -> tuple[dict[str, Any], float]:
    """The running daemon's /health once it is ready, and the seconds spent waiting for its load.

    While it answers 503 model_loading, ask again when its Retry-After says, for up to
    timeout_s, telling `note` once that it waits and then the elapsed time every WAIT_NOTE_S.
    A failed load raises CodexpcError with the daemon's reason; a daemon that goes away,
    DaemonNotRunning. It asks a model route, not /health: after a failed load the daemon stays
    to tell its reason only while model requests keep coming.
    """
    started = time.monotonic()
    noted: float | None = None  # when `note` last spoke; None: the daemon was not loading yet
    health: dict[str, Any] = {}
    while True:
        try:
            with Link(socket_path) as link:
                response = link.http.get("/v1/models")
                if response.status_code == 200:
                    return link.get("/health"), time.monotonic() - started if noted is not None else 0.0
                message, code = error_of(response)
                if code != "model_loading":  # model_load_failed (the reason, then it exits), or shutting down
                    raise CodexpcError(f"the daemon answered {response.status_code}: {message}")
                if noted is None:
                    health = link.http.get("/health").json()
        except DaemonNotRunning:
            if noted is None:
                raise
            raise DaemonNotRunning(f"the daemon on {socket_path} went away while loading its model; "
                                   "see `codexpc logs`") from None
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon on {socket_path} did not answer: {exc}") from None
        now = time.monotonic()
        waited = now - started
        if noted is None:
            loading_s = float(health.get("engine", {}).get("loading_s", 0.0))
            note(f"the daemon on {socket_path} is still loading {health.get('model')} ({loading_s:.0f}s so far); "
                 f"waiting up to {timeout_s:.0f}s")
            noted = now
        elif now - noted >= WAIT_NOTE_S:
            note(f"  still loading after {waited:.0f}s")
            noted = now
        if waited >= timeout_s:
            raise CodexpcError(f"the daemon on {socket_path} was still loading after {timeout_s:.0f}s; "
                               "see `codexpc logs`")
        retry_after = response.headers.get("retry-after", "")
        pause = float(retry_after) if retry_after.isdigit() else 1.0  # our daemon sends whole seconds
        time.sleep(max(0.1, min(pause, WAIT_NOTE_S, timeout_s - waited)))
