"""One streamed generation on one back end: POST, then the chunks as Deltas.

Every way a back end can fail becomes one of two exceptions, so the caller decides what to do:
- BackendFault: the back end is at fault (refused, timed out, 5xx, garbage, a stream cut short);
  it is taken out, and the request moves to another back end if nothing was delivered yet.
- RequestRejected: vLLM refused this request (4xx: too long, bad parameters); another back end
  would refuse it too.
The first request to a back end tries the generate route; a back end without it (FastAPI's 404)
is asked through /v1/completions from then on. Leaving the `async with` (a cancel, an error)
closes the connection, which is how vLLM learns the client went away and aborts the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from codexpc.engine.api import SamplingParams
from codexpc.engine.vllm.backend import Backend
from codexpc.engine.vllm.sse import DONE, data_payloads
from codexpc.engine.vllm.wire import (
    PATHS,
    Delta,
    Route,
    StreamError,
    WireError,
    error_message,
    is_missing_route,
    parse_chunk,
    request_body,
)


class BackendFault(Exception):
    """The back end failed; it should be taken out for a while."""


class RequestRejected(Exception):
    """vLLM refused the request itself; trying another back end would not help."""


async def stream_deltas(client: httpx.AsyncClient, backend: Backend, prompt: Sequence[int],
                        params: SamplingParams, request_id: str) -> AsyncIterator[Delta]:
    """The generation's chunks from `backend`, ending after `[DONE]`."""
    route: Route = backend.route or "generate"
    while True:
        body = request_body(route, prompt, params, request_id, backend.model_id)
        try:
            async with client.stream("POST", backend.url + PATHS[route], json=body) as response:
                if response.status_code != 200:
                    content = await response.aread()
                    if route == "generate" and backend.route is None and is_missing_route(response.status_code,
                                                                                          content):
                        route = "completions"  # an older vLLM: same request, older route
                        continue
                    _raise_status(response.status_code, content, route)
                backend.route = route
                _check_event_stream(response)
                async for delta in _deltas(response, route):
                    yield delta
                return
        except httpx.TimeoutException as exc:
            raise BackendFault(f"{_timeout_kind(exc)} timed out ({client.timeout.read or 0:.0f}s read "
                               f"timeout, {client.timeout.connect or 0:.0f}s connect)") from None
        except httpx.TransportError as exc:
            raise BackendFault(f"connection failed: {type(exc).__name__}: {exc or 'closed'}") from None


async def _deltas(response: httpx.Response, route: Route) -> AsyncIterator[Delta]:
    try:
        async for data in data_payloads(response):
            if data == DONE:
                return
            yield parse_chunk(route, data)
    except WireError as exc:
        raise BackendFault(f"answered garbage: {exc}") from None
    except StreamError as exc:
        if exc.code is not None and 400 <= exc.code < 500:
            raise RequestRejected(f"vLLM refused the request: {exc}") from None
        raise BackendFault(f"vLLM reported an error: {exc}") from None
    raise BackendFault("the stream ended before [DONE]")


def _raise_status(status: int, content: bytes, route: Route) -> None:
    message = f"HTTP {status} from {PATHS[route]}: {error_message(content)}"
    if 400 <= status < 500 and not is_missing_route(status, content) and status not in (408, 429):
        raise RequestRejected(message)
    raise BackendFault(message)  # 5xx, a busy 429, or no token route at all


def _check_event_stream(response: httpx.Response) -> None:
    kind = response.headers.get("content-type", "")
    if not kind.startswith("text/event-stream"):
        raise BackendFault(f"answered garbage: {kind or 'no content type'} instead of an event stream")


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return "connecting"
    return "waiting for the next chunk"
