"""Who gets in: the middleware on a small real app, the token file, and the peer's uid."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from codexpc.errors import ConfigError
from codexpc.server import security
from codexpc.server.security import Policy, SecurityMiddleware

PORT = 8787
TOKEN = "t0ken-of-at-least-16-chars"


def small_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        return {"transport": request.scope["codexpc_transport"]}

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/admin/reload")
    async def reload() -> dict[str, bool]:
        return {"ok": True}

    return app


def client(transport: str = "tcp", token: str | None = None, max_body: int = 1000) -> httpx.AsyncClient:
    policy = Policy(
        transport=transport,  # type: ignore[arg-type]
        allowed_hosts=security.loopback_hosts(PORT),
        token=token,
        max_body_bytes=max_body,
    )
    app = SecurityMiddleware(small_app(), policy)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://127.0.0.1:{PORT}")


async def test_transport_is_marked() -> None:
    async with client("tcp") as c:
        assert (await c.get("/health")).json() == {"transport": "tcp"}
    async with client("unix") as c:
        assert (await c.get("/health", headers={"host": "localhost"})).json() == {"transport": "unix"}


@pytest.mark.parametrize("host", ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "LOCALHOST:8787"])
async def test_allowed_hosts(host: str) -> None:
    async with client() as c:
        assert (await c.get("/health", headers={"host": host})).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example:8787", "127.0.0.1:9999", "localhost", "127.0.0.1.nip.io:8787"]
)
async def test_rebinding_hosts_are_refused(host: str) -> None:
    async with client() as c:
        response = await c.get("/health", headers={"host": host})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_any_origin_is_refused_and_no_cors_headers() -> None:
    async with client() as c:
        response = await c.post("/v1/echo", json={}, headers={"origin": "http://127.0.0.1:8787"})
        assert response.status_code == 403
        assert "Origin" in response.json()["error"]["message"]
        ok = await c.get("/health")
    assert not any(h.lower().startswith("access-control-") for h in [*response.headers, *ok.headers])


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_only_json_bodies(content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with client() as c:
        response = await c.post("/v1/echo", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_json_with_charset_is_accepted() -> None:
    async with client() as c:
        response = await c.post(
            "/v1/echo", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
        )
    assert response.json() == {"bytes": 2}


async def test_body_size_bounded_declared_and_streamed() -> None:
    async with client(max_body=100) as c:
        assert (await c.post("/v1/echo", json={"x": "a" * 50})).json()["bytes"] > 50
        too_big = await c.post("/v1/echo", json={"x": "a" * 200})
        assert too_big.status_code == 413

        async def chunks():  # no content-length: chunked transfer
            for _ in range(5):
                yield b" " * 30

        streamed = await c.post("/v1/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "request_too_large"


async def test_admin_only_on_unix() -> None:
    async with client("tcp") as c:
        assert (await c.post("/admin/reload", json={})).status_code == 403
    async with client("unix") as c:
        assert (await c.post("/admin/reload", json={})).json() == {"ok": True}


async def test_bearer_token_on_tcp() -> None:
    async with client(token=TOKEN) as c:
        missing = await c.get("/health")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert (await c.get("/health", headers={"authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/health", headers={"authorization": f"Basic {TOKEN}"})).status_code == 401
        assert (await c.get("/health", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
    async with client("unix", token=TOKEN) as c:  # the Unix socket relies on the peer's uid
        assert (await c.get("/health")).status_code == 200


def test_token_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert security.load_token(path) == TOKEN
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 644"):
        security.load_token(path)
    path.chmod(0o600)
    path.write_text("short")
    with pytest.raises(ConfigError, match="shorter"):
        security.load_token(path)
    with pytest.raises(ConfigError, match="cannot read"):
        security.load_token(tmp_path / "absent")


async def test_off_loopback_any_host_but_the_token_is_required() -> None:
    policy = Policy(transport="tcp", allowed_hosts=None, token=TOKEN)
    app = SecurityMiddleware(small_app(), policy)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://192.168.1.5:8787"
    ) as c:
        assert (await c.get("/health")).status_code == 401
        assert (await c.get("/health", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200


def test_peer_uid_is_ours() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert security.peer_uid(a) == os.getuid()


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")
def test_other_users_connection_is_closed(tmp_path: Path) -> None:
    """A real uvicorn server on a Unix socket; a child process as `nobody` gets no answer."""
    import asyncio
    import threading

    import uvicorn

    folder = Path(tempfile.mkdtemp(prefix="codexpc-peer-"))
    folder.chmod(0o755)  # only for this test: let `nobody` reach the socket and the uid check
    path = folder / "s.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o777)
    app = SecurityMiddleware(small_app(), Policy(transport="unix", allowed_hosts=frozenset()))
    config = uvicorn.Config(app, http=security.PeerCheckedProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
        assert _ask(path, request, as_uid=None).startswith(b"connected HTTP/1.1 200")
        assert _ask(path, request, as_uid=65534) == b"connected "  # then closed, no answer
    finally:
        server.should_exit = True
        thread.join(5)
        shutil.rmtree(folder)


def _ask(path: Path, request: bytes, as_uid: int | None) -> bytes:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to another uid, ask, pass the answer back
        os.close(read)
        try:
            if as_uid is not None:
                os.setuid(as_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(path))
                os.write(write, b"connected ")
                s.sendall(request)
                os.write(write, s.recv(100))
        finally:
            os._exit(0)
    os.close(write)
    answer = b""
    while chunk := os.read(read, 100):
        answer += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return answer
