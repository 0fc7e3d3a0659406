"""A small client of the daemon: the Unix socket first, loopback TCP when no socket answers.

Admin calls (reload) go only over the Unix socket: the daemon refuses them on TCP. The pieces
below the class (probing the socket, reading an error body, reading SSE data lines) are the
CLI's too: codexpc.cli.link builds its calls from them.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from codexpc.errors import DaemonNotRunning, RequestError

if TYPE_CHECKING:
    from codexpc.config import DaemonConfig

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 300.0  # a stream may stay idle this long between events (as Codex allows)
RELOAD_TIMEOUT_S = 900.0  # loading a 120b checkpoint from a cold disk takes minutes
# The Host header every request carries: one the daemon's TCP allowlist takes.
_HOST = "127.0.0.1"


def probe(path: Path) -> str | None:
    """None when something listens on the Unix socket; else why no daemon answers there."""
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


def socket_answers(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket (a stale file does not)."""
    return probe(path) is None


def http_timeout(read_s: float) -> httpx.Timeout:
    return httpx.Timeout(read_s, connect=CONNECT_TIMEOUT_S)


def unix_http(path: Path, read_timeout_s: float = READ_TIMEOUT_S) -> httpx.Client:
    """An HTTP client whose every request goes over the Unix socket at `path`."""
    transport = httpx.HTTPTransport(uds=str(path))
    return httpx.Client(transport=transport, base_url=f"http://{_HOST}", timeout=http_timeout(read_timeout_s))


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """An error answer's message and OpenAI error code (None when the body has no JSON error)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return response.text, None
    return str(error.get("message") or response.text), error.get("code")


def sse_data(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Each SSE event's data, parsed, until `data: [DONE]` or the end of the lines."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # `event:` names repeat the data's `type`; blank lines end events
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


class DaemonClient:
    """Talks to a running daemon. Use as a context manager, or call close()."""

    def __init__(self, socket_path: Path | None, port: int | None = None, token: str | None = None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.via: Literal["unix", "tcp"]
        if socket_path is not None and socket_answers(socket_path):
            self.via = "unix"
            self.http = unix_http(socket_path)
        elif port is not None:
            self.via = "tcp"
            base = f"http://{_HOST}:{port}"
            self.http = httpx.Client(base_url=base, timeout=http_timeout(READ_TIMEOUT_S), headers=headers)
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
            yield from sse_data(response.iter_lines())
        finally:
            response.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon did not answer {method} {path}: {exc}") from None

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            message, code = error_of(response)
            raise RequestError(f"the daemon answered {response.status_code}: {message}", code=code)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RequestError(f"the daemon answered {response.status_code} without a JSON object")
        return data
