"""Server-sent events framing for the Responses and Chat Completions streams."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"  # the end marker of a Chat Completions stream
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


def _json(payload: BaseModel | dict[str, Any]) -> str:
    if isinstance(payload, BaseModel):
        # exclude_unset keeps optional fields the API leaves out absent, as the real API does;
        # warnings=False because some codes (e.g. context_length_exceeded) are outside the SDK's literals.
        return payload.model_dump_json(exclude_unset=True, warnings=False)
    return json.dumps(payload, separators=(",", ":"))


def event(payload: BaseModel | dict[str, Any], name: str | None = None) -> bytes:
    """One SSE frame; Responses events carry their `type` as the event name too."""
    data = _json(payload)
    if name is None:
        return f"data: {data}\n\n".encode()
    return f"event: {name}\ndata: {data}\n\n".encode()
