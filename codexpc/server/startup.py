"""The daemon before its first engine is ready: what it is loading, or why that load failed.

The listeners serve from the start. While the model loads, `create_loading_app` answers every
route from a `Startup`: /health with the state, model requests with the OpenAI-style 503 of
`Startup.refusal()` (Retry-After while loading), so clients learn at once instead of waiting in
the backlog.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from codexpc.errors import CodexpcError, UnavailableError
from codexpc.server.errors import (
    ModelLoadFailedError,
    ModelLoadingError,
    error_body,
    error_response,
    install_error_handlers,
)
from codexpc.server.metrics import render_startup
from codexpc.server.openapi import openapi_document


@dataclass
class Startup:
    """The daemon before its first engine is ready: what it loads, since when, or why it failed."""

    model: str
    engine: str  # the engine kind being built
    checkpoint: str | None
    device: str
    started: float = field(default_factory=time.monotonic)
    failure: str | None = None  # why the load failed; the daemon exits soon after
    stopping: bool = False  # a stop signal came while loading
    # When a model request was last refused: after a failed load the daemon stays up while
    # clients keep coming back, so they learn why instead of finding no socket.
    last_request: float | None = None

    @property
    def state(self) -> Literal["loading", "failed"]:
        return "failed" if self.failure is not None else "loading"

    def loading_s(self) -> float:
        return time.monotonic() - self.started

    def refusal(self) -> CodexpcError:
        """What a request gets now: loading (retry soon), failed (why), or shutting down."""
        if self.failure is not None:
            return ModelLoadFailedError(
                f"the model {self.model} failed to load: {self.failure}. The daemon is exiting; see its log "
                "(`codexpc logs`), fix the checkpoint or the config, and start it again")
        if self.stopping:
            return UnavailableError("the daemon is shutting down; retry in a moment")
        return ModelLoadingError(
            f"the model {self.model} is still loading ({self.loading_s():.1f} s so far); "
            f"retry in {ModelLoadingError.retry_after_s} s")

    def refuse_request(self) -> CodexpcError:
        """The refusal of a model request, noting when it came."""
        self.last_request = time.monotonic()
        return self.refusal()

    def health(self) -> dict[str, Any]:
        """GET /health's body (with a 503): the state, the model, and the error a request gets."""
        refusal = self.refusal()
        return {"status": self.state, "model": self.model, "checkpoint": self.checkpoint, "device": self.device,
                "engine": {"kind": self.engine, "state": self.state, "loading_s": round(self.loading_s(), 3)},
                **error_body(str(refusal), refusal.http_status, refusal.code),
                "uptime_s": round(self.loading_s(), 3), "in_flight": 0, "reloads": 0}




def create_loading_app(startup: Startup) -> FastAPI:
    """The app before the engine is ready. /health answers 503 with the state (so readiness
    checks, `codexpc health` and the CLI's wait for a daemon all read "not ready yet"); model
    requests get the OpenAI-style 503 of `startup.refusal()`, with Retry-After while loading."""
    app = FastAPI(title="codexpc", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        refusal = error_response(startup.refusal())  # its status and Retry-After
        return JSONResponse(startup.health(), status_code=refusal.status_code,
                            headers={k: v for k, v in refusal.headers.items() if k == "retry-after"})

    @app.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        return openapi_document()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(render_startup(startup.state, startup.loading_s()),
                                 media_type="text/plain; version=0.0.4")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def not_ready(path: str) -> Response:
        raise startup.refuse_request()

    return app


