"""The CLI's line to a running daemon: JSON calls and a timed SSE stream over the Unix socket.

"No daemon" is one clear error (DaemonNotRunning, exit code 5) whether the socket file is
missing or is a stale file left by a daemon that crashed.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from codexpc.errors import CodexpcError, DaemonNotRunning

CONNECT_TIMEOUT_S = 3.0
CALL_TIMEOUT_S = 30.0
STREAM_IDLE_TIMEOUT_S = 300.0  # what Codex allows too
START_HINT = "start one: `codexpc serve` (foreground) or `codexpc install` (the user service)"


def add_daemon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="config file naming the daemon's socket")
    p.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's Unix socket")


def socket_from_args(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    from codexpc.config import load_config

    return load_config(getattr(args, "config", None), {}).listen.socket_path


def probe(path: Path) -> str | None:
    """None when something listens on the socket; else why no daemon answers."""
    if not path.exists():
        return f"no daemon is running: there is no socket at {path}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(CONNECT_TIMEOUT_S)
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return f"no daemon is running: {path} is a stale socket file left by a daemon that exited"
        except PermissionError:
            return f"no daemon is reachable: permission denied on {path} (another user's daemon?)"
        except OSError as exc:
            return f"no daemon is reachable at {path}: {exc.strerror or exc}"
    return None


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
    def __init__(self, socket_path: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        problem = probe(socket_path)
        if problem is not None:
            raise DaemonNotRunning(f"{problem}; {START_HINT}")
        transport = httpx.HTTPTransport(uds=str(socket_path))
        timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        # The Host must be one the daemon's allowlist takes; "localhost" is.
        self.http = httpx.Client(transport=transport, base_url="http://localhost", timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
                message = error.get("message") or response.text
            except ValueError:
                message = response.text
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
            response = self.http.post(path, json=body, timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S))
        except httpx.TransportError as exc:
            raise CodexpcError(f"{path} failed: {exc}") from None
        self._check(response)
        result: dict[str, Any] = response.json()
        return result

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[SseEvent]:
        """POST a streaming request; yield each SSE event with its arrival time."""
        start = time.monotonic()
        timeout = httpx.Timeout(STREAM_IDLE_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        try:
            with self.http.stream("POST", path, json=body, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # `event:` names repeat the data's `type`; blank lines end events
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    data = json.loads(payload)
                    yield SseEvent(str(data.get("type", "")), data, time.monotonic() - start)
        except httpx.TransportError as exc:
            raise CodexpcError(f"the stream from {path} broke: {exc}") from None
