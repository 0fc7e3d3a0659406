"""Who gets in: the peer's uid on the Unix socket; Host, Origin, content type and token on TCP.

Loopback TCP is reachable from any web page the user opens (DNS rebinding, simple POSTs that
need no preflight), so the TCP side trusts nothing a browser can set. The Unix socket sits in a
0700 folder; its connections are checked once more by the peer's uid as they are accepted.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from codexpc.config.schema import LimitsConfig
from codexpc.errors import ConfigError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Transport = Literal["unix", "tcp"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


# ---------------------------------------------------------------------------------------------
# The Unix socket: the peer's uid, checked as each connection is accepted.


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket, or None if the OS won't say."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid}
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    if sys.platform == "darwin":  # getpeereid(3) is LOCAL_PEERCRED: struct xucred {version, uid, ...}
        local_peercred, sol_local = 0x001, 0
        creds = sock.getsockopt(sol_local, local_peercred, struct.calcsize("2I"))
        return int(struct.unpack("2I", creds[:8])[1])
    return None


class PeerCheckedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing Unix-socket connections from any other user.

    httptools rather than h11: h11's state machine cost more per streamed chunk than all of a
    token's decoding and serialization together (bench/daemon_overhead.py).
    """

    def connection_made(self, transport: Any) -> None:  # asyncio.Transport
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return
        uid = peer_uid(sock)
        if uid != os.getuid():
            log.warning("refused a Unix-socket connection from uid=%s (we are uid=%d)", uid, os.getuid())
            transport.close()


# ---------------------------------------------------------------------------------------------
# The bearer token file.


def load_token(path: Path) -> str:
    """The token in a file that only we can read (mode 0600 or stricter)."""
    try:
        info = os.stat(path)
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"listen.token_file: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"listen.token_file: {path} is not UTF-8 text") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"listen.token_file: {path} must be a regular file owned by us")
    if info.st_mode & 0o077:
        raise ConfigError(f"listen.token_file: {path} has mode {stat.S_IMODE(info.st_mode):o}; make it 0600")
    if len(text) < 16:
        raise ConfigError(f"listen.token_file: the token in {path} is shorter than 16 characters")
    return text


# ---------------------------------------------------------------------------------------------
# The middleware.


@dataclass(frozen=True)
class Policy:
    transport: Transport
    # Host header values, lower case, with the port. None: any Host, only off loopback, where a
    # token is required (load_config checks) and keeps browsers out instead.
    allowed_hosts: frozenset[str] | None
    token: str | None = None  # TCP only
    max_body_bytes: int = LimitsConfig.max_body_bytes  # the daemon passes its config's value
    allowed_origins: frozenset[str] = frozenset()  # none: no browser page may call us


def loopback_hosts(port: int) -> frozenset[str]:
    """The Host values a local client sends to our port."""
    return frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class SecurityMiddleware:
    """Marks each scope with its transport and refuses what the transport must not accept."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # no websocket routes exist
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["codexpc_transport"] = self.policy.transport
        scope["codexpc_send"] = send  # the server's own: app.py streams body chunks straight to it
        headers = _headers(scope)
        try:
            self._check_headers(scope, headers)
            if scope["method"] in _BODY_METHODS:
                receive = await self._bounded_body(headers, receive)
        except _Refused as refused:
            log.warning(
                "refused transport=%s method=%s path=%s status=%d: %s",
                self.policy.transport,
                scope.get("method"),
                scope.get("path"),
                refused.status,
                refused,
            )
            await _send_error(send, refused)
            return
        await self.app(scope, receive, send)

    def _check_headers(self, scope: Scope, headers: dict[str, str]) -> None:
        policy = self.policy
        if policy.transport == "tcp":
            host = headers.get("host", "").lower()
            if policy.allowed_hosts is not None and host not in policy.allowed_hosts:
                raise _Refused(403, "forbidden", f"Host {host or '(none)'!r} is not allowed")
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in policy.allowed_origins:
                raise _Refused(403, "forbidden", f"Origin {origin!r} is not allowed")
            if scope["path"].startswith("/admin"):
                raise _Refused(403, "forbidden", "admin routes are served only on the Unix socket")
            if policy.token is not None and not _token_ok(headers.get("authorization"), policy.token):
                raise _Refused(401, "invalid_api_key", "a valid bearer token is required")
        if scope["method"] in _BODY_METHODS:
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise _Refused(415, "unsupported_media_type", "request bodies must be application/json")

    async def _bounded_body(self, headers: dict[str, str], receive: Receive) -> Receive:
        """Read the whole body (at most max_body_bytes), then replay it to the app."""
        limit = self.policy.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _Refused(413, "request_too_large", f"the request body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _replay(b"", receive, disconnected=True)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "request_too_large", f"the request body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return _replay(b"".join(chunks), receive)


def _replay(body: bytes, receive: Receive, disconnected: bool = False) -> Receive:
    # The app reads the body once, then waits on the real receive (for the client's disconnect).
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnected:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _token_ok(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest on bytes: constant time whatever the given value is.
    return hmac.compare_digest(given.strip().encode(), token.encode()) and scheme.lower() == "bearer"


def _headers(scope: Scope) -> dict[str, str]:
    # Repeated headers: the first wins (a second Host header is not a way around the check).
    result: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        result.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
    return result


_ERROR_TYPES = {401: "authentication_error", 403: "permission_error"}


async def _send_error(send: Send, refused: _Refused) -> None:
    # The OpenAI error body, as codexpc.server.errors writes it for the app's own errors.
    error_type = _ERROR_TYPES.get(refused.status, "invalid_request_error")
    error = {"message": str(refused), "type": error_type, "param": None, "code": refused.code}
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
