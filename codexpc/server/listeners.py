"""What the daemon's listeners run: uvicorn's settings and the capture aid."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import uvicorn

from codexpc.config import DaemonConfig
from codexpc.server.security import ASGIApp, Message, PeerCheckedProtocol, Receive, Scope, Send

log = logging.getLogger("codexpc.daemon")
END_GRACE_S = 3.0  # after the engine is closed, for the streams to write their final events


def uvicorn_config(app: ASGIApp, config: DaemonConfig) -> uvicorn.Config:
    uv = uvicorn.Config(
        app,
        http=PeerCheckedProtocol,
        lifespan="off",  # the daemon owns the engine's lifetime, not the app
        log_config=None,  # the CLI set up logging; uvicorn must not replace it
        log_level=config.log_level,
        server_header=False,
        proxy_headers=False,  # nothing sits in front of us; never trust X-Forwarded-*
        timeout_graceful_shutdown=int(config.limits.shutdown_timeout_s + END_GRACE_S) + 1,
    )
    uv.load()
    return uv


def capture(app: ASGIApp, folder: Path | None) -> ASGIApp:
    """Debugging aid (capture_dir): write each POST body to FOLDER/NNNN-<path>.json."""
    if folder is None:
        return app
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    counter = iter(range(1, 10**9))

    async def captured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        name = f"{next(counter):04d}-{scope['path'].strip('/').replace('/', '_')}.json"

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                _write_capture(folder / name, message.get("body", b""))
            return message

        await app(scope, recording, send)

    return captured


def _write_capture(path: Path, body: bytes) -> None:
    try:
        json.loads(body)  # only well-formed JSON bodies are worth keeping
    except ValueError:
        return
    with open(path, "ab") as f:  # the security layer hands over the body in one message
        f.write(body)
    log.debug("captured %s (%d bytes)", path, len(body))
