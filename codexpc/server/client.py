"""A small client of the daemon: the Unix socket first, loopback TCP when no socket answers.

Admin calls (reload) go only over the Unix socket: the daemon refuses them on TCP.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx

from codexpc.config import DaemonConfig
from codexpc.errors import DaemonNotRunning, RequestError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 300.0  # a stream may stay idle this long between events (as Codex allows)
RELOAD_TIMEOUT_S = 900.0  # loading a 120b checkpoint from a cold disk takes minutes
# The Host header every request carries: one the daemon's TCP allowlist takes.
_HOST = "127.0.0.1"


def socket_answers(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket (a stale file does not)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(CONNECT_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class DaemonClient:
    """Talks to a running daemon. Use as a context manager, or call close()."""

    def __init__(self, socket_path: Path | None, port: int | None = None, token: str | None = None) -> None:
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.via: Literal["unix", "tcp"]
        if socket_path is not None and socket_answers(socket_path):
            transport = httpx.HTTPTransport(uds=str(socket_path))
            self.via = "unix"
            self.http = httpx.Client(transport=transport, base_url=f"http://{_HOST}", timeout=timeout)
        elif port is not None:
            self.via = "tcp"
            base = f"http://{_HOST}:{port}"
            self.http = httpx.Client(base_url=base, timeout=timeout, headers=headers)
        else:
            raise DaemonNotRunning(f"no daemon answers on {socket_path} and no TCP port was given")
        log.debug("daemon client via %s", self.via)

    @classmethod
    def from_config(cls, config: DaemonConfig, token: str | None = None) -> DaemonClient:
        listen = config.listen
        return cls(listen.socket_path if listen.unix else None, listen.port if listen.tcp else None, token)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def health(self) -> dict[str, Any]:
        return self._json(self._call("GET", "/health"))

    def reload(self) -> dict[str, Any]:
        if self.via != "unix":
            raise DaemonNotRunning("reload needs the daemon's Unix socket, which does not answer")
        return self._json(self._call("POST", "/admin/reload", json={}, timeout=RELOAD_TIMEOUT_S))

    def responses(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A non-streaming POST /v1/responses: the response object."""
        return self._json(self._call("POST", "/v1/responses", json={**body, "stream": False}))

    def stream_responses(self, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """A streaming POST /v1/responses: each event's data, in order, until the stream ends."""
        request = self.http.build_request("POST", "/v1/responses", json={**body, "stream": True})
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon did not answer: {exc}") from None
        try:
            if response.status_code != 200:
                response.read()
                self._json(response)  # raises with the daemon's error message
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[len("data: ") :])
        finally:
            response.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon did not answer {method} {path}: {exc}") from None

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            message = error.get("message") if isinstance(error, dict) else response.text[:200]
            code = error.get("code") if isinstance(error, dict) else None
            raise RequestError(f"the daemon answered {response.status_code}: {message}", code=code)
        if not isinstance(data, dict):
            raise RequestError(f"the daemon answered {response.status_code} without a JSON object")
        return data
