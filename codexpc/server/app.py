"""The HTTP app: thin routes over a Runtime. No sockets here; the daemon owns the listeners.

Routes: POST /v1/responses, POST /v1/chat/completions, GET /v1/models, GET /health,
GET /metrics, GET /openapi.json (server/openapi.py), POST /admin/reload (Unix socket only).

Each model route is a few lines: parse the body once (server/request.py), pick the model,
start a Session, answer through its translator (server/translators.py). While the model loads
the daemon serves server/startup.py's app instead.
"""

from __future__ import annotations

import logging
import resource
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from codexpc.errors import ForbiddenError, RequestError
from codexpc.harmony.render import render_chat, render_responses
from codexpc.server import sse
from codexpc.server.admission import AdmissionMiddleware
from codexpc.server.chat_stream import ChatStream
from codexpc.server.errors import install_error_handlers
from codexpc.server.ids import new_id
from codexpc.server.lmstudio_routes import lmstudio_router, model_cards
from codexpc.server.ollama_routes import ollama_router
from codexpc.server.openapi import openapi_document
from codexpc.server.request import parse_chat, parse_responses
from codexpc.server.response_object import DEFAULT_TEXT, ResponseMeta
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.runtime import Runtime
from codexpc.server.session import Session
from codexpc.server.stored_routes import stored_router
from codexpc.server.translators import ChatTranslator, ResponsesTranslator, Translator
from codexpc.store import ResponseStore, resolve_previous

log = logging.getLogger(__name__)

ReloadHook = Callable[[], Awaitable[Mapping[str, Any]]]


def create_app(runtime: Runtime, reload_hook: ReloadHook | None = None,
               store: ResponseStore | None = None) -> FastAPI:
    app = FastAPI(title="codexpc", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(stored_router(lambda: store))  # GET/DELETE /v1/responses/{id}, .../input_items

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        req = parse_responses(await request.body(), runtime.limits)
        model = runtime.resolve_model(req.model)
        # The stored conversation before the new input: the renderer sees all of it, and the
        # engine's prefix cache finds the earlier turns (a continued turn costs its new tokens).
        body = await anyio.to_thread.run_sync(resolve_previous, store, req.body)
        session = Session(runtime, "responses", new_id("resp"))
        await session.start(lambda: render_responses(body, runtime.encoding, runtime.render_options),
                            req.sampling, req.shape)
        meta = ResponseMeta(id=session.request_id, model=model.name, max_output_tokens=req.echo.max_output_tokens,
                            temperature=req.echo.temperature, top_p=req.echo.top_p, tools=req.echo.tools,
                            tool_choice=req.echo.tool_choice, parallel_tool_calls=req.echo.parallel_tool_calls,
                            reasoning=req.echo.reasoning, metadata=req.echo.metadata,
                            instructions=req.echo.instructions, previous_response_id=req.echo.previous_response_id,
                            store=req.echo.store, text=req.echo.text or DEFAULT_TEXT,
                            prompt_cache_key=req.echo.prompt_cache_key)
        translator = ResponsesTranslator(ResponsesStream(meta))
        reply = await _respond(request, session, translator, req.stream)
        # TODO(lead): for a stream, call this in session.stream()'s end, before the terminal frame.
        if store is not None and meta.store and translator.stream.final is not None:
            final = translator.stream.final.model_dump(mode="json", exclude_unset=True, by_alias=True, warnings=False)
            await anyio.to_thread.run_sync(store.put, final, req.body.get("input"))
        return reply

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = parse_chat(await request.body(), runtime.limits)
        model = runtime.resolve_model(req.model)
        session = Session(runtime, "chat", new_id("chatcmpl"))
        await session.start(lambda: render_chat(req.body, runtime.encoding, runtime.render_options), req.sampling,
                            req.shape)
        chat = ChatStream(id=session.request_id, model=model.name)
        return await _respond(request, session, ChatTranslator(chat, req.include_usage), req.stream)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": model_cards(runtime)}  # every alias too: --oss looks up its own names

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return _model_card(runtime.resolve_model(name))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        info = runtime.engine.info
        stats = {**runtime.engine.stats(), "constrained_decoding": runtime.constrainer is not None}
        return {"status": "ok", "model": info.model, "checkpoint": info.checkpoint, "device": info.device,
                "engine": {"kind": info.kind, "state": "ready", "context_length": info.context_length,
                           "loaded_at": runtime.loaded_at(), "stats": stats},
                "memory": {"process_max_rss_bytes": _max_rss_bytes(),
                           **{k: v for k, v in stats.items() if "memory" in k or "bytes" in k}},
                "uptime_s": round(runtime.uptime_s(), 3), "in_flight": runtime.metrics.in_flight,
                "reloads": runtime.reloads}

    @app.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        return openapi_document()

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        text = runtime.metrics.render(runtime.engine.stats(), runtime.uptime_s())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload")
    async def admin_reload(request: Request) -> dict[str, Any]:
        if request.scope.get("codexpc_transport") != "unix":
            raise ForbiddenError("admin requests are accepted only on the Unix socket")
        if reload_hook is None:
            raise RequestError("this daemon cannot reload", code="reload_unavailable")
        return {"reloaded": True, **(await reload_hook())}

    app.include_router(ollama_router(runtime))  # codex --oss (Ollama mode)
    app.include_router(lmstudio_router(runtime))  # codex --oss --local-provider lmstudio
    app.add_middleware(AdmissionMiddleware, admission=runtime.admission)  # FIFO past max_in_flight, then 503
    return app


class SSEResponse(StreamingResponse):
    """A StreamingResponse whose body chunks go straight to the server's `send`.

    Starlette's middleware wrap `send` only to note that the response started, which its first
    message already told them; skipping them per chunk saves a few µs per streamed token.
    Without the server's send in the scope (no SecurityMiddleware), it streams as its parent.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._server_send: Send | None = scope.get("codexpc_send")
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        write = self._server_send or send
        async for chunk in self.body_iterator:
            await write({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class ClientGone(Exception):
    """The client disconnected before its non-streaming response was ready."""


async def until_disconnect(request: Request, work: Awaitable[None]) -> None:
    """Await `work`, unless the client disconnects first: then cancel it and raise ClientGone."""
    finished = False

    async def run(scope: anyio.CancelScope) -> None:
        nonlocal finished
        await work
        finished = True
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        # The body was read already: the next message is http.disconnect, whenever it comes.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(run, group.cancel_scope)
        group.start_soon(watch, group.cancel_scope)
    if not finished:
        raise ClientGone()


async def _respond(request: Request, session: Session, translator: Translator, stream: bool) -> Response:
    """The one way a model request is answered: streamed as SSE, or drained into one body."""
    if stream:
        # The stream's own `finally` closes the session; the background task covers a stream
        # that never started (the client left before the first event).
        return SSEResponse(session.stream(translator), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS,
                           background=BackgroundTask(session.close))
    try:
        await until_disconnect(request, session.drain(translator))
    except ClientGone:
        log.info("request=%s client gone", session.request_id)
    finally:
        await session.close(translator.outcome())
    status, body = translator.result()
    return JSONResponse(body, status_code=status)


def _model_card(entry: Any) -> dict[str, Any]:
    return {"id": entry.name, "object": "model", "created": entry.created, "owned_by": "codexpc",
            "context_window": entry.context_length, "aliases": list(entry.aliases)}


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes
