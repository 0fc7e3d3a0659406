"""A real daemon in a subprocess, on the scripted engine: both listeners, SIGHUP, SIGTERM.

`DaemonProcess` is also used by test_openai_unix_socket.py and test_codex_cli_e2e.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codexpc.errors import DaemonNotRunning, RequestError
from codexpc.server.client import DaemonClient

# The daemon process: logging to stderr, then serve(). A scripted engine with a per-token delay
# (argv[2]) lets a test catch a stream in flight; a load time (argv[3]) catches the loading.
LAUNCHER = """
import logging, os, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
from codexpc.config import load_config
from codexpc.server.daemon import serve

delay, load_s = float(sys.argv[2]), float(sys.argv[3])

def engine_factory(kind, *, model, checkpoint, device="auto"):
    from codexpc.engine.factory import create_engine
    time.sleep(load_s)
    if kind == "scripted" and delay:
        from codexpc.engine.scripted import ScriptedEngine
        from codexpc.harmony.encoding import load_encoding
        return ScriptedEngine(load_encoding(), model=model, delay_s=delay)
    return create_engine(kind, model=model, checkpoint=checkpoint, device=device)

sys.exit(serve(load_config(Path(sys.argv[1])), engine_factory=engine_factory))
"""

READY_TIMEOUT_S = 60.0  # importing torch on a busy 2-core machine


class DaemonProcess:
    """`codexpc serve` as a subprocess, with its own socket folder, config file and log."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        toml: str = "",
        port: int = 0,
        folder: Path | None = None,
        token: str | None = None,
        load_s: float = 0.0,
        checkpoint: Path | None = None,
    ) -> None:
        # A short folder: socket paths are limited to about 100 bytes.
        self.folder = folder or Path(tempfile.mkdtemp(prefix="cxd-"))
        self.socket_path = self.folder / "run" / "codexpc.sock"
        self.log_path = self.folder / "daemon.log"
        self.config_path = self.folder / "config.toml"
        self.delay_s = delay_s
        self.load_s = load_s
        self.token = token
        listen = f'port = {port}\nsocket = "{self.socket_path}"\nhosts = ["127.0.0.1"]\n'
        if token is not None:
            token_file = self.folder / "token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            listen += f'token_file = "{token_file}"\n'
        model = 'engine = "scripted"\n' + (f'checkpoint = "{checkpoint}"\n' if checkpoint is not None else "")
        self.config_path.write_text(f'{toml}\n[listen]\n{listen}[models."gpt-oss-20b"]\n{model}')
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def start(self, wait: bool = True) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(self.config_path), str(self.delay_s), str(self.load_s)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            self.wait_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log()
            if " ready model=" in text:
                found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
                self.port = int(found.group(1)) if found else None
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not become ready:\n{self.log()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def unix_client(self, **kwargs: object) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket_path))
        return httpx.Client(transport=transport, base_url="http://codexpc", **{"timeout": 30, **kwargs})  # type: ignore[arg-type]

    def tcp_client(self, with_token: bool = True) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.token}"} if self.token and with_token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30, headers=headers)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def sse_events(lines: Iterator[str]) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: {")]


TOKEN = "a-token-of-32-characters-0123456"


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    process = DaemonProcess(token=TOKEN).start()
    try:
        yield process
    finally:
        process.signal(signal.SIGTERM)
        process.wait_exit()
        process.close()


def test_both_listeners_answer(daemon: DaemonProcess) -> None:
    with daemon.unix_client() as unix, daemon.tcp_client() as tcp:
        for client in (unix, tcp):
            health = client.get("/health").json()
            assert health["model"] == "gpt-oss-20b" and health["engine"]["kind"] == "scripted"
            answer = client.post("/v1/responses", json={"model": "gpt-oss:20b", "input": "hello"}).json()
            assert answer["status"] == "completed"
            assert "Scripted answer to: hello" in json.dumps(answer["output"])
    assert mode_of(daemon.socket_path) == 0o600 and mode_of(daemon.socket_path.parent) == 0o700


def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_tcp_needs_the_token_and_unix_does_not(daemon: DaemonProcess) -> None:
    with daemon.tcp_client(with_token=False) as tcp, daemon.unix_client() as unix:
        refused = tcp.get("/health")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert tcp.get("/health", headers={"authorization": "Bearer " + "x" * 32}).status_code == 401
        assert unix.get("/health").status_code == 200


def test_tcp_refuses_browsers_and_admin(daemon: DaemonProcess) -> None:
    with daemon.tcp_client() as tcp:
        assert tcp.post("/admin/reload", json={}).status_code == 403
        assert tcp.get("/health", headers={"host": "evil.example"}).status_code == 403
        assert (
            tcp.post(
                "/v1/responses", json={"input": "x"}, headers={"origin": "https://evil.example"}
            ).status_code
            == 403
        )
        text = tcp.post("/v1/responses", content=b'{"input":"x"}', headers={"content-type": "text/plain"})
        assert text.status_code == 415
        assert "access-control-allow-origin" not in text.headers


def test_reload_by_admin_request_and_sighup(daemon: DaemonProcess) -> None:
    with daemon.unix_client() as unix:
        before = unix.get("/health").json()["reloads"]
        reply = unix.post("/admin/reload", json={})
        assert reply.status_code == 200 and reply.json()["reloaded"] is True
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while unix.get("/health").json()["reloads"] < before + 2:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        # The warm engine answers at once after a reload.
        assert unix.post("/v1/responses", json={"input": "after"}).json()["status"] == "completed"
    assert "received SIGHUP: reloading" in daemon.log()


def test_reload_and_sigterm_mid_stream_lose_nothing() -> None:
    process = DaemonProcess(delay_s=0.05).start()  # ~40 tokens: about 2 s of stream
    try:
        events: list[dict] = []
        with process.unix_client() as unix:
            reader = threading.Thread(target=_read_stream, args=(unix, events, process))
            reader.start()
            _wait_for(lambda: bool(events), process)
            # The reload re-reads the config file: a new default model.
            text = process.config_path.read_text()
            process.config_path.write_text(
                'default_model = "gpt-oss-120b"\n' + text + '[models."gpt-oss-120b"]\nengine = "scripted"\n'
            )
            process.signal(signal.SIGHUP)  # the stream goes on on the old engine
            _wait_for(lambda: "old_in_flight=1" in process.log(), process)
            assert unix.get("/health").json()["model"] == "gpt-oss-120b"
            process.signal(signal.SIGTERM)  # and is allowed to finish
            reader.join(30)
        assert events[-1]["type"] == "response.completed", [e["type"] for e in events]
        assert events[-1]["response"]["model"] == "gpt-oss-20b"
        assert process.wait_exit() == 0
        assert not process.socket_path.exists()  # removed on the way out
        assert "stopping: no new connections; 1 request(s) running" in process.log()
    finally:
        process.close()


def test_sigterm_deadline_ends_streams_with_a_final_event() -> None:
    toml = "[limits]\nshutdown_timeout_s = 0.5\n"
    process = DaemonProcess(delay_s=0.5, toml=toml).start()  # a stream of ~20 s
    try:
        events: list[dict] = []
        with process.unix_client() as unix:
            reader = threading.Thread(target=_read_stream, args=(unix, events, process))
            reader.start()
            _wait_for(lambda: bool(events), process)
            started = time.monotonic()
            process.signal(signal.SIGTERM)
            reader.join(30)
        assert process.wait_exit() == 0
        assert time.monotonic() - started < 8
        assert events[-1]["type"] in ("response.incomplete", "response.failed"), [e["type"] for e in events]
    finally:
        process.close()


def _read_stream(client: httpx.Client, into: list[dict], process: DaemonProcess) -> None:
    body = {"input": "stream please", "stream": True}
    try:
        with client.stream("POST", "/v1/responses", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                into.extend(sse_events(iter([line])))
    except httpx.RemoteProtocolError:
        into.append({"type": "(stream cut without a final event)"})


def _wait_for(condition: object, process: DaemonProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.02)


def test_stale_socket_is_replaced_and_live_daemon_refused() -> None:
    first = DaemonProcess()
    try:
        first.socket_path.parent.mkdir(mode=0o700)
        crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        crashed.bind(str(first.socket_path))
        crashed.close()  # what a killed daemon leaves behind
        first.start()
        assert "removing stale socket" in first.log()
        second = DaemonProcess(folder=Path(tempfile.mkdtemp(prefix="cxd-")))
        second.config_path.write_text(first.config_path.read_text())  # the same socket path
        try:
            second.start(wait=False)
            assert second.wait_exit() == 2
            assert "already running" in second.log()
        finally:
            second.close()
        with first.unix_client() as unix:  # the live daemon is untouched
            assert unix.get("/health").status_code == 200
    finally:
        first.close()


def test_port_in_use_is_a_clear_error() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    process = DaemonProcess(port=blocker.getsockname()[1])
    try:
        process.start(wait=False)
        assert process.wait_exit() == 2
        assert "is already in use" in process.log()
    finally:
        blocker.close()
        process.close()


def test_client_unix_first_then_tcp(daemon: DaemonProcess) -> None:
    with DaemonClient(daemon.socket_path, daemon.port, TOKEN) as client:
        assert client.via == "unix"
        assert client.health()["model"] == "gpt-oss-20b"
        assert client.reload()["reloaded"] is True
        events = list(client.stream_responses({"input": "hi"}))
        assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
        assert client.responses({"input": "hi"})["status"] == "completed"
        with pytest.raises(RequestError, match="404"):
            client.responses({"model": "nope", "input": "hi"})
    with DaemonClient(daemon.folder / "absent.sock", daemon.port, TOKEN) as client:
        assert client.via == "tcp"
        assert client.health()["status"] == "ok"
        with pytest.raises(DaemonNotRunning, match="Unix socket"):
            client.reload()
    with pytest.raises(DaemonNotRunning):
        DaemonClient(daemon.folder / "absent.sock", None)


def test_a_bad_checkpoint_is_a_clear_error_and_frees_the_socket() -> None:
    toml = 'default_model = "broken"\n[models.broken]\nengine = "torch"\ncheckpoint = "/nonexistent/ckpt"\n'
    process = DaemonProcess(toml=toml)
    try:
        process.start(wait=False)
        assert process.wait_exit(60) == 4  # CheckpointError's exit code
        assert "cannot start: /nonexistent/ckpt" in process.log()
        assert not process.socket_path.exists()
    finally:
        process.close()


def test_signals_while_loading() -> None:
    """SIGHUP is ignored, SIGTERM waits for the load then exits 0, a second SIGTERM exits now."""
    process = DaemonProcess(load_s=3.0)
    try:
        process.start(wait=False)
        _wait_for(lambda: "loading model=" in process.log(), process, timeout=60)
        process.signal(signal.SIGHUP)
        process.signal(signal.SIGTERM)
        assert process.wait_exit() == 0
        log = process.log()
        assert "received SIGHUP while starting or stopping: ignored" in log
        assert " ready model=" not in log
    finally:
        process.close()
    process = DaemonProcess(load_s=30.0)
    try:
        process.start(wait=False)
        _wait_for(lambda: "loading model=" in process.log(), process, timeout=60)
        process.signal(signal.SIGTERM)
        _wait_for(lambda: "shutting down" in process.log(), process)
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        assert process.wait_exit() == 128 + signal.SIGTERM
        assert time.monotonic() - started < 5
    finally:
        process.close()
