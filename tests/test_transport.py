"""The listening sockets: modes made without a race, stale vs live sockets, ports in use."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from pathlib import Path

import pytest

from codexpc.config import ListenConfig
from codexpc.errors import AlreadyRunning, ListenError
from codexpc.server import transport

ROOT = os.getuid() == 0
NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_unix_socket_folder_0700_and_socket_0600(tmp_path: Path) -> None:
    path = tmp_path / "run" / "deep" / "codexpc.sock"
    sock = transport.bind_unix(path)
    try:
        assert mode(path.parent) == 0o700
        assert mode(path) == 0o600
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        sock.close()


def test_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "codexpc.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))
    crashed.close()  # the file stays, nobody listens: what a crash leaves
    sock = transport.bind_unix(path)
    sock.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_live_daemon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "codexpc.sock"
    live = transport.bind_unix(path)
    try:
        with pytest.raises(AlreadyRunning, match="already running"):
            transport.bind_unix(path)
        assert path.exists()  # the live daemon's socket is left alone
    finally:
        live.close()


def test_non_socket_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "codexpc.sock"
    path.write_text("not a socket")
    with pytest.raises(ListenError, match="not a socket"):
        transport.bind_unix(path)
    assert path.read_text() == "not a socket"


def test_folder_writable_by_others_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(ListenError, match="writable by others"):
        transport.bind_unix(folder / "codexpc.sock")


def test_symlinked_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ListenError, match="not a plain folder"):
        transport.prepare_folder(tmp_path / "link")


def test_too_long_socket_path(tmp_path: Path) -> None:
    with pytest.raises(ListenError, match="longer than"):
        transport.bind_unix(tmp_path / ("x" * 120) / "s.sock")


@pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root")
def test_folder_or_socket_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(ListenError, match="belongs to uid"):
        transport.bind_unix(folder / "codexpc.sock")
    path = tmp_path / "codexpc.sock"
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    planted.bind(str(path))
    planted.close()
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    with pytest.raises(ListenError, match="belongs to uid"):
        transport.bind_unix(path)


def test_port_in_use_is_a_clear_error() -> None:
    first = transport.bind_tcp("127.0.0.1", 0)
    port = first.getsockname()[1]
    try:
        with pytest.raises(ListenError, match=f"127.0.0.1:{port} is already in use"):
            transport.bind_tcp("127.0.0.1", port)
    finally:
        first.close()


def test_bind_all_and_close_all(tmp_path: Path) -> None:
    listen = ListenConfig(port=0, socket_path=tmp_path / "r" / "codexpc.sock")
    listeners = transport.bind_all(listen)
    try:
        assert listeners.port and listeners.unix is not None
        assert {s.getsockname()[1] for s in listeners.tcp} == {listeners.port}
        assert f"127.0.0.1:{listeners.port}" in listeners.tcp_addresses()
        for sock in listeners.tcp:  # 127.0.0.1, and ::1 where the machine has IPv6
            with socket.create_connection(sock.getsockname()[:2], timeout=2):
                pass
        assert all(ipaddress.ip_address(s.getsockname()[0]).is_loopback for s in listeners.tcp)
    finally:
        transport.close_all(listeners)
    assert not listen.socket_path.exists()


def test_bind_all_failure_closes_what_was_bound(tmp_path: Path) -> None:
    blocker = transport.bind_tcp("127.0.0.1", 0)
    port = blocker.getsockname()[1]
    listen = ListenConfig(port=port, hosts=("127.0.0.1",), socket_path=tmp_path / "codexpc.sock")
    try:
        with pytest.raises(ListenError, match="already in use"):
            transport.bind_all(listen)
        assert not listen.socket_path.exists()  # the Unix socket bound first is gone again
    finally:
        blocker.close()


def test_second_daemon_is_told_already_running_before_port_in_use(tmp_path: Path) -> None:
    listen = ListenConfig(port=0, hosts=("127.0.0.1",), socket_path=tmp_path / "codexpc.sock")
    first = transport.bind_all(listen)
    try:
        with pytest.raises(AlreadyRunning):
            transport.bind_all(
                ListenConfig(port=first.port or 0, hosts=listen.hosts, socket_path=listen.socket_path)
            )
    finally:
        transport.close_all(first)


def test_close_all_leaves_a_replaced_socket(tmp_path: Path) -> None:
    path = tmp_path / "codexpc.sock"
    listeners = transport.bind_all(ListenConfig(tcp=False, socket_path=path))
    path.unlink()  # another daemon took over the path meanwhile
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    try:
        transport.close_all(listeners)
        assert path.exists()
    finally:
        other.close()
