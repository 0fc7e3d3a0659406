"""Server-sent events framing for the Responses and Chat Completions streams."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"  # the end marker of a Chat Completions stream
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"

# A str in, its JSON string out, in one C call; non-ASCII stays UTF-8, as pydantic writes it.
json_string = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Delta:
    """A per-token event (a text or arguments delta) as JSON made from a template.

    `head` and `tail` are built once per output item and hold everything but the delta text,
    in the key order pydantic writes; only `text` is escaped per token. Building and dumping
    an openai model per token cost more than the token's whole way through HTTP
    (bench/daemon_overhead.py); tests check that the bytes match the model's own.
    """

    type: str  # the Responses event type, also the SSE event name; "" for chat chunks
    head: str
    text: str
    tail: str

    def json(self) -> str:
        return f"{self.head}{json_string(self.text)}{self.tail}"


def _json(payload: BaseModel | dict[str, Any] | Delta) -> str:
    if isinstance(payload, Delta):
        return payload.json()
    if isinstance(payload, BaseModel):
        # exclude_unset keeps optional fields the API leaves out absent, as the real API does;
        # warnings=False because some codes (e.g. context_length_exceeded) are outside the SDK's literals.
        return payload.model_dump_json(exclude_unset=True, by_alias=True, warnings=False)  # `schema`, not `schema_`
    return json.dumps(payload, separators=(",", ":"))


def event(payload: BaseModel | dict[str, Any] | Delta, name: str | None = None) -> bytes:
    """One SSE frame; Responses events carry their `type` as the event name too."""
    data = _json(payload)
    if name is None:
        return f"data: {data}\n\n".encode()
    return f"event: {name}\ndata: {data}\n\n".encode()
