"""The stored-response routes: GET /v1/responses/{id}, GET /v1/responses/{id}/input_items and
DELETE /v1/responses/{id}, as OpenAI publishes them. An unknown id (never stored, deleted,
evicted, or stored with store:false) is OpenAI's 404. The store's calls touch the disk, so
they run in a worker thread while the loop keeps streaming other requests' tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codexpc.errors import RequestError
from codexpc.server.errors import not_found_response
from codexpc.store.responses import LIMIT_DEFAULT, ResponseStore


def stored_router(store: Callable[[], ResponseStore | None]) -> APIRouter:
    """The routes over whatever store `store()` gives now (None: the store is off, nothing is found)."""
    router = APIRouter()

    @router.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, request: Request) -> JSONResponse:
        if _flag(request, "stream"):
            raise RequestError("stream is only for background responses, which this server does not run",
                               param="stream", code="unsupported_parameter")
        current = store()
        found = await anyio.to_thread.run_sync(current.get, response_id) if current else None
        return JSONResponse(found) if found is not None else not_found_response("Response", response_id)

    @router.get("/v1/responses/{response_id}/input_items")
    async def input_items(response_id: str, request: Request) -> JSONResponse:
        query = request.query_params
        order, after, limit = query.get("order", "desc"), query.get("after"), _limit(query.get("limit"))
        current = store()
        listed: dict[str, Any] | None = None
        if current is not None:
            listed = await anyio.to_thread.run_sync(lambda: current.input_items(response_id, order, limit, after))
        return JSONResponse(listed) if listed is not None else not_found_response("Response", response_id)

    @router.delete("/v1/responses/{response_id}")
    async def delete_response(response_id: str) -> JSONResponse:
        current = store()
        deleted = await anyio.to_thread.run_sync(current.delete, response_id) if current else False
        if not deleted:
            return not_found_response("Response", response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    return router


def _limit(raw: str | None) -> int:
    if raw is None:
        return LIMIT_DEFAULT
    try:
        return int(raw)
    except ValueError:
        raise RequestError(f"limit must be an integer; got {raw[:40]!r}", param="limit") from None


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw.lower() in ("false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise RequestError(f"{name} must be true or false", param=name)
