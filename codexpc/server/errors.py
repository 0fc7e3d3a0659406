"""OpenAI error bodies for every failure: {"error": {"message", "type", "param", "code"}}.

codexpc.errors gives each exception its HTTP status and `code`; this module renders them and
installs the handlers, so that no client mistake ever becomes a bare 500 or an HTML page. The
two 503s of a daemon whose model is not loaded yet are defined here, beside the server that
alone raises them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from codexpc.errors import CodexpcError, RequestError, UnavailableError
from codexpc.harmony.events import ToolCallError

log = logging.getLogger(__name__)


class ModelLoadingError(UnavailableError):
    """The daemon is up but its model is still loading; the client should retry shortly."""

    code = "model_loading"
    # Codex waits what Retry-After says, up to 5 times (stream_max_retries): 5 x 3 s covers the
    # load of gpt-oss-20b from a warm disk, while a small model's client waits at most 3 s.
    retry_after_s = 3


class ModelLoadFailedError(CodexpcError):
    """The model failed to load; the daemon is on its way out. Retrying cannot help, but Codex
    retries every 5xx anyway (5 times): Retry-After only paces those retries, so they end within
    seconds with a clear failed turn while the daemon still answers."""

    http_status = 503
    code = "model_load_failed"
    retry_after_s = 1


@dataclass(frozen=True)
class Failure:
    """Why a response that already streamed ends as failed (response.failed, or an error frame)."""

    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. tool, path for an invalid call


# The codes a failed Response's `error.code` may carry beyond the published ResponseErrorCode
# enum. OpenAI's own service sends context_length_exceeded there (Codex reads it to tell a full
# context window from other failures); the rest name failures a local model has and the hosted
# API reports as a bare server_error, which would hide the remedy.
EXTRA_RESPONSE_ERROR_CODES = ("context_length_exceeded", "invalid_model_output", "invalid_tool_call",
                              "engine_error", "engine_out_of_memory", "cancelled")

# The HTTP status of a failure that ends a request before any byte of it was sent (a Chat
# Completion without streaming). The model's broken output is the upstream's fault, not ours:
# 502, as a gateway says of an invalid answer from upstream; a retry samples again and may
# succeed. No memory or a server going down: 503, come back later. Only an engine bug is a 500.
FAILURE_STATUS = {"invalid_model_output": 502, "invalid_tool_call": 502, "engine_out_of_memory": 503,
                  "cancelled": 503, "context_length_exceeded": 400, "engine_error": 500}
FAILURE_RETRY_AFTER_S = {503: 2}


def failure_status(failure: Failure) -> int:
    return FAILURE_STATUS.get(failure.code, 500)


def failure_body(failure: Failure) -> dict[str, Any]:
    """The OpenAI error object of a failure: a reply's body, or a stream's last frame."""
    status = failure_status(failure)
    error_type = "model_error" if status == 502 else None  # the `type` OpenAI gives a model's bad output
    return error_body(failure.message, status, failure.code, type_=error_type)


def failure_response(failure: Failure) -> JSONResponse:
    """A failure as the reply to a request that streamed nothing, with a status a client can act on."""
    status = failure_status(failure)
    retry = FAILURE_RETRY_AFTER_S.get(status)
    return JSONResponse(failure_body(failure), status_code=status,
                        headers={"Retry-After": str(retry)} if retry is not None else None)


def not_found_response(what: str, object_id: str) -> JSONResponse:
    """OpenAI's 404 for an object id it does not know: an invalid_request_error, no code."""
    message = f"{what} with id '{object_id}' not found."
    return JSONResponse(error_body(message, 404, None, type_="invalid_request_error"), status_code=404)


def tool_failure(error: ToolCallError) -> Failure:
    message = f"invalid call of {error.tool}: {error.message} (at {error.path})"
    return Failure("invalid_tool_call", message, {"tool": error.tool, "path": error.path, "kind": error.kind})


def engine_failure(message: str) -> Failure:
    """Why the engine ended a generation; running out of device memory gets its own code, since
    the remedy differs (retry, or a shorter conversation) and the daemon itself stays up."""
    if "OutOfMemoryError" in message or "out of memory" in message.lower():
        return Failure("engine_out_of_memory", "the device ran out of memory while generating this response; the "
                       f"request was ended and the daemon goes on (retry, or shorten the conversation): {message}")
    return Failure("engine_error", message)


def _error_type(status: int) -> str:
    # The `type` values the OpenAI API uses, by status.
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status < 500:
        return "invalid_request_error"
    return "server_error"


def error_body(message: str, status: int, code: str | None, param: str | None = None,
               type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_ or _error_type(status), "param": param, "code": code}}


def error_response(exc: CodexpcError) -> JSONResponse:
    param = exc.param if isinstance(exc, RequestError) else None
    retry_after = getattr(exc, "retry_after_s", None)  # 429 and 503: when to come back
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(error_body(str(exc), exc.http_status, exc.code, param), status_code=exc.http_status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    return f"{param or 'body'}: {first.get('msg', 'invalid')}", param


async def _on_codexpc_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CodexpcError)
    # A model still loading, or failed to load, is the daemon's state (logged once), not a failure
    # of each request: Codex polls through a load with one request per Retry-After.
    if exc.http_status >= 500 and not isinstance(exc, ModelLoadingError | ModelLoadFailedError):
        log.error("request failed path=%s code=%s: %s", request.url.path, exc.code, exc)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = _validation_message(exc)
    return JSONResponse(error_body(message, 400, "invalid_request_error", param), status_code=400)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "invalid_request_error"
    if exc.status_code == 405:
        code = "method_not_allowed"
    return JSONResponse(error_body(str(exc.detail), exc.status_code, code), status_code=exc.status_code,
                        headers=exc.headers)


async def _on_client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The client left before its body was read: nothing went wrong here and nobody reads the
    # answer, so no traceback and no error line (the soak test's abandoned clients do this).
    log.info("client gone before its request was read path=%s", request.url.path)
    return JSONResponse(error_body("the client disconnected", 400, "client_disconnected"), status_code=400)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug of ours: log it with its traceback, give the client a well-formed 500.
    log.exception("unexpected error path=%s", request.url.path)
    return JSONResponse(error_body("internal server error", 500, "server_error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CodexpcError, _on_codexpc_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)
