"""The CLI's line to a running daemon: JSON calls and a timed SSE stream over the Unix socket.

"No daemon" is one clear error (DaemonNotRunning, exit code 5) whether the socket file is
missing or is a stale file left by a daemon that crashed. The socket, the HTTP client and the
reading of answers are codexpc.server.client's; this module adds the CLI's errors and timings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from codexpc.errors import CodexpcError, DaemonNotRunning
from codexpc.server.client import error_of, http_timeout, probe, sse_data, unix_http

CALL_TIMEOUT_S = 30.0
STREAM_IDLE_TIMEOUT_S = 300.0  # what Codex allows too
START_HINT = "start one: `codexpc serve` (foreground) or `codexpc install` (the user service)"

__all__ = ["Link", "SseEvent", "add_daemon_flags", "probe", "request_body", "socket_from_args"]


def add_daemon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="config file naming the daemon's socket")
    p.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's Unix socket")


def socket_from_args(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    from codexpc.config import load_config

    return load_config(getattr(args, "config", None), {}).listen.socket_path


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
