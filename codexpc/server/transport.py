"""The daemon's listening sockets: a Unix socket in a private folder, and loopback TCP.

Nothing here speaks HTTP. The sockets are made before the server starts so that every problem
(a live daemon already there, a port in use, a folder owned by someone else) is a clear error
at startup rather than a traceback from inside the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codexpc.config import ListenConfig
from codexpc.errors import AlreadyRunning, ListenError

log = logging.getLogger(__name__)

BACKLOG = 128
# sun_path is 108 bytes on Linux and 104 on macOS, the trailing NUL included.
MAX_SOCKET_PATH = 103


@dataclass(frozen=True)
class Listeners:
    """Bound, listening sockets; `port` is the TCP port actually bound (useful with port 0)."""

    unix: socket.socket | None
    tcp: tuple[socket.socket, ...]
    socket_path: Path | None
    socket_inode: int | None  # to unlink only our own socket file on exit
    port: int | None

    @property
    def all(self) -> list[socket.socket]:
        return [*([self.unix] if self.unix else []), *self.tcp]

    def tcp_addresses(self) -> list[str]:
        return [_url_host(s.getsockname()[0]) + f":{s.getsockname()[1]}" for s in self.tcp]


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    # The umask is process-wide; the daemon binds before it starts any thread.
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def prepare_folder(folder: Path) -> None:
    """Create the socket's folder as 0700, or check that an existing one is safely ours."""
    with _umask(0o077):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ListenError(f"listen.socket: cannot create folder {folder}: {exc.strerror}") from None
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ListenError(f"listen.socket: {folder} is not a plain folder")
    if info.st_uid != os.getuid():
        raise ListenError(f"listen.socket: folder {folder} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o022:
        # Someone else could replace our socket with theirs.
        raise ListenError(
            f"listen.socket: folder {folder} is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
        )


def clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a crashed daemon; refuse a live one or anything not ours."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(f"listen.socket: {path} exists and is not a socket")
    if info.st_uid != os.getuid():
        raise ListenError(f"listen.socket: {path} belongs to uid {info.st_uid}, not to us")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.warning("removing stale socket %s (no daemon answers on it)", path)
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        raise ListenError(f"listen.socket: cannot probe {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise AlreadyRunning(f"a codexpc daemon is already running on {path}")


def bind_unix(path: Path) -> socket.socket:
    """A listening Unix socket with mode 0600, created so (no chmod afterwards, no race)."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ListenError(f"listen.socket: {path} is longer than {MAX_SOCKET_PATH} bytes")
    prepare_folder(path.parent)
    clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _umask(0o177):
            sock.bind(str(path))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"listen.socket: cannot bind {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def remove_socket(path: Path, inode: int) -> None:
    """Unlink our socket file on exit, unless another daemon has replaced it since."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if stat.S_ISSOCK(info.st_mode) and info.st_ino == inode:
            path.unlink()


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on one address; a port in use is a clear error."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart must not wait for TIME_WAIT. SO_REUSEADDR on Linux does
        # not let two live listeners share a port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"listen.port: {_url_host(host)}:{port} is already in use "
                "(another codexpc daemon? try `codexpc status`, or pick another --port)"
            ) from None
        raise ListenError(f"listen.hosts: cannot bind {_url_host(host)}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def _ipv6_missing(exc: ListenError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


def bind_all(listen: ListenConfig) -> Listeners:
    """Every socket the config asks for, or none at all (a failure closes what was bound)."""
    # The Unix socket first: a second daemon is then told "already running", not "port in use".
    unix = bind_unix(listen.socket_path) if listen.unix else None
    unix_inode = os.lstat(listen.socket_path).st_ino if unix else None
    bound: list[socket.socket] = []
    try:
        port = listen.port
        for host in listen.hosts if listen.tcp else ():
            try:
                sock = bind_tcp(host, port)
            except ListenError as exc:
                # A machine without IPv6 still serves 127.0.0.1 (a container often has no ::1).
                if host == "::1" and len(listen.hosts) > 1 and _ipv6_missing(exc):
                    log.warning("::1 is not available on this machine; serving IPv4 loopback only")
                    continue
                raise
            bound.append(sock)
            port = sock.getsockname()[1]  # with port 0, every address gets the first one's port
    except BaseException:
        for sock in bound:
            sock.close()
        if unix is not None and unix_inode is not None:
            remove_socket(listen.socket_path, unix_inode)
            unix.close()
        raise
    return Listeners(
        unix=unix,
        tcp=tuple(bound),
        socket_path=listen.socket_path if unix else None,
        socket_inode=unix_inode,
        port=bound[0].getsockname()[1] if bound else None,
    )


def close_all(listeners: Listeners) -> None:
    for sock in listeners.tcp:
        sock.close()
    if listeners.unix is not None:
        if listeners.socket_path is not None and listeners.socket_inode is not None:
            remove_socket(listeners.socket_path, listeners.socket_inode)
        listeners.unix.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
