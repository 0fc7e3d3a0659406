"""The HTTP app: thin routes over a Runtime. No sockets here; the daemon owns the listeners.

Routes: POST /v1/responses, POST /v1/chat/completions, GET /v1/models, GET /health,
GET /metrics, GET /openapi.json (server/openapi.py), POST /admin/reload (Unix socket only).

While the model loads the daemon serves `create_loading_app` instead: /health and every other
route answer at once with a 503 that says so, rather than leaving clients in the backlog.
"""

from __future__ import annotations

import logging
import resource
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from codexpc.errors import CodexpcError, ForbiddenError, RequestError
from codexpc.harmony.render import render_chat, render_responses
from codexpc.server import sse
from codexpc.server.body import parse_body
from codexpc.server.chat_stream import ChatStream
from codexpc.server.errors import error_body, error_response, install_error_handlers
from codexpc.server.metrics import render_startup
from codexpc.server.openapi import openapi_document
from codexpc.server.responses_stream import ResponseMeta, ResponsesStream
from codexpc.server.runtime import Runtime, Startup
from codexpc.server.session import Session, new_id, sampling_from_body

log = logging.getLogger(__name__)

ReloadHook = Callable[[], Awaitable[Mapping[str, Any]]]


async def read_body(request: Request) -> dict[str, Any]:
    """The JSON object of the request body, or a 400 that says what is wrong with it."""
    body = parse_body(await request.body())
    # null is "not given", as in OpenAI's API (its SDKs send it for unset options).
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise RequestError("stream must be a boolean", param="stream")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise RequestError("model must be a string", param="model")
    return body


def create_app(runtime: Runtime, reload_hook: ReloadHook | None = None) -> FastAPI:
    app = FastAPI(title="codexpc", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    install_error_handlers(app)

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        body = await read_body(request)
        _refuse_stored_state(body)
        model = runtime.resolve_model(body.get("model"))
        runtime.limits.check_body(body, "input")
        sampling = sampling_from_body(body, runtime.limits, "max_output_tokens")
        meta = ResponseMeta(id=new_id("resp"), model=model.name, max_output_tokens=body.get("max_output_tokens"),
                            temperature=sampling.temperature, top_p=sampling.top_p, tools=body.get("tools") or [],
                            tool_choice=body.get("tool_choice", "auto"),
                            parallel_tool_calls=_flag(body, "parallel_tool_calls", True),
                            reasoning=_reasoning(body), metadata=_metadata(body))
        session = Session(runtime, "responses", meta.id)
        await _start(session, lambda: render_responses(body, runtime.encoding, runtime.render_options), sampling)
        stream = ResponsesStream(meta)
        if body.get("stream"):
            return SSEResponse(_responses_sse(session, stream), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS,
                               background=_closing(session))
        await _run(request, session, _drain_responses(session, stream))
        assert stream.final is not None
        return JSONResponse(stream.final.model_dump(mode="json", exclude_unset=True, warnings=False))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await read_body(request)
        model = runtime.resolve_model(body.get("model"))
        runtime.limits.check_body(body, "messages")
        sampling = sampling_from_body(body, runtime.limits, "max_tokens", "max_completion_tokens")
        include_usage = _include_usage(body)
        chat = ChatStream(id=new_id("chatcmpl"), model=model.name)
        session = Session(runtime, "chat", chat.id)
        await _start(session, lambda: render_chat(body, runtime.encoding, runtime.render_options), sampling)
        if body.get("stream"):
            return SSEResponse(_chat_sse(session, chat, include_usage), media_type=sse.MEDIA_TYPE,
                               headers=sse.HEADERS, background=_closing(session))
        await _run(request, session, _drain_chat(session, chat))
        if chat.failure is not None:
            return JSONResponse(error_body(chat.failure.message, 500, chat.failure.code), status_code=500)
        completion = chat.completion(session.usage())
        return JSONResponse(completion.model_dump(mode="json", exclude_none=True, warnings=False))

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(m) for m in runtime.models]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return _model_card(runtime.resolve_model(name))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        info = runtime.engine.info
        stats = runtime.engine.stats()
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

    return app


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


async def _start(session: Session, render: Callable[[], Any], sampling: Any) -> None:
    """Render and submit; a refusal here is an HTTP error, before any stream begins."""
    try:
        # In a worker thread: a Codex turn renders ~40 KB of tools and instructions (tens of
        # ms), and the loop must keep streaming other requests' tokens meanwhile.
        rendered = await anyio.to_thread.run_sync(render)
        session.start(rendered, sampling)
    except CodexpcError as exc:
        await session.close(exc.code)
        raise
    except BaseException:
        await session.close("error")
        raise


def _closing(session: Session) -> BackgroundTask:
    # The stream's own `finally` closes the session; this covers a stream that never started
    # (the client left before the first event), whose generator body never ran.
    return BackgroundTask(session.close)


async def _run(request: Request, session: Session, work: Awaitable[None]) -> None:
    """Run a non-streaming request; a client that goes away cancels it at once."""
    try:
        await until_disconnect(request, work)
    except ClientGone:
        log.info("request=%s client gone", session.request_id)
    finally:
        await session.close()


async def _responses_sse(session: Session, stream: ResponsesStream) -> AsyncIterator[bytes]:
    # One write per engine step: a socket write costs more than the rest of a token's work.
    try:
        yield b"".join(sse.event(event, event.type) for event in stream.start())
        async for step in session.steps():
            frames = [sse.event(event, event.type) for decoded in step for event in stream.feed(decoded)]
            if frames:
                yield b"".join(frames)
            if stream.failure is not None:
                break  # a refused tool call ends the response now; close() cancels the rest
        finish = stream.finish(session.usage(), session.engine_error, session.finish_reason == "cancelled")
        yield b"".join(sse.event(event, event.type) for event in finish)
    finally:
        await session.close(stream.final.status if stream.final else None)


async def _drain_responses(session: Session, stream: ResponsesStream) -> None:
    stream.start()
    async for decoded in session.events():
        stream.feed(decoded)
        if stream.failure is not None:
            break
    stream.finish(session.usage(), session.engine_error, session.finish_reason == "cancelled")


async def _chat_sse(session: Session, chat: ChatStream, include_usage: bool) -> AsyncIterator[bytes]:
    try:
        for chunk in chat.start():
            yield sse.event(chunk)
        async for step in session.steps():
            frames = [sse.event(chunk) for decoded in step for chunk in chat.feed(decoded)]
            if frames:
                yield b"".join(frames)
            if chat.failure is not None:
                break
        for chunk in chat.close(session.usage(), session.engine_error, include_usage):
            yield sse.event(chunk)
        if chat.failure is not None:
            yield sse.event(error_body(chat.failure.message, 500, chat.failure.code))
        yield sse.DONE
    finally:
        await session.close()


async def _drain_chat(session: Session, chat: ChatStream) -> None:
    async for decoded in session.events():
        chat.feed(decoded)
        if chat.failure is not None:
            break
    chat.close(session.usage(), session.engine_error, include_usage=False)


def _refuse_stored_state(body: Mapping[str, Any]) -> None:
    # Nothing is stored here (Codex sends store: false and the whole conversation each turn);
    # silently ignoring these would answer a different question than the one asked.
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise RequestError(f"{key} is not supported: this server stores no responses; send the whole "
                               "conversation in input", param=key, code="unsupported_parameter")
    if body.get("background"):
        raise RequestError("background responses are not supported", param="background",
                           code="unsupported_parameter")


def _flag(body: Mapping[str, Any], key: str, default: bool, param: str | None = None) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{param or key} must be a boolean", param=param or key)
    return value


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("stream_options must be an object", param="stream_options")
    return _flag(options, "include_usage", False, "stream_options.include_usage")


def _reasoning(body: Mapping[str, Any]) -> dict[str, Any] | None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise RequestError("reasoning must be an object", param="reasoning")
    effort = reasoning.get("effort")
    if effort is not None and effort not in ("minimal", "low", "medium", "high"):
        raise RequestError("reasoning.effort must be low, medium or high", param="reasoning.effort")
    return {"effort": effort, "summary": reasoning.get("summary")}


def _metadata(body: Mapping[str, Any]) -> dict[str, str] | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise RequestError("metadata must map strings to strings", param="metadata")
    return metadata


def _model_card(entry: Any) -> dict[str, Any]:
    return {"id": entry.name, "object": "model", "created": entry.created, "owned_by": "codexpc",
            "context_window": entry.context_length, "aliases": list(entry.aliases)}


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes
