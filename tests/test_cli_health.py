"""health, reload and serve when things are wrong: no daemon, a stale socket, a port in use, bad config."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from test_cli_daemon import codexpc, leave_stale_socket, user_env


def test_health_without_a_daemon_exits_5(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    result = codexpc(env, "health")
    assert result.returncode == 5
    assert "no daemon is running: there is no socket at" in result.stdout
    assert "codexpc serve" in result.stdout  # says how to start one
    data = json.loads(codexpc(env, "health", "--json").stdout)
    assert data == {**data, "ok": False, "running": False}


def test_health_names_a_stale_socket(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    stale = tmp_path / "run" / "codexpc" / "codexpc.sock"
    leave_stale_socket(stale)
    result = codexpc(env, "health")
    assert result.returncode == 5
    assert "stale socket file" in result.stdout and str(stale) in result.stdout


def test_reload_and_warmup_without_a_daemon_exit_5(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    for command in ("reload", "warmup"):
        result = codexpc(env, command)
        assert result.returncode == 5, command
        assert "no daemon is running" in result.stderr


def test_serve_on_a_port_in_use_exits_2(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = codexpc(env, "serve", "--engine", "scripted", "--port", str(port), "--host", "127.0.0.1", timeout=90)
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr


def test_serve_with_a_wrong_checkpoint_path_exits_4(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    result = codexpc(env, "serve", "--checkpoint", str(tmp_path / "no-such-model"), "--no-tcp", timeout=90)
    assert result.returncode == 4, result.stderr
    assert "no-such-model" in result.stderr


def test_a_broken_config_file_exits_2(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    config = tmp_path / "bad.toml"
    config.write_text("[listen]\nport = 'eighty'\n")
    result = codexpc(env, "health", "--config", str(config))
    assert result.returncode == 2
    assert "listen.port" in result.stderr
