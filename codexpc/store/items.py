"""A request's `input` as the API lists it back (GET /v1/responses/{id}/input_items): each item
with an id and a status, and a message's text as typed content parts, as OpenAI's service
normalises them. The renderer reads these forms as it reads what a client sends, so the same
items also feed a continued conversation (chain.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

# The id prefix OpenAI uses for each item type it assigns an id to.
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs",
           "custom_tool_call": "ctc", "custom_tool_call_output": "ctco"}


def new_item_id(item_type: str) -> str:
    return f"{_PREFIX.get(item_type, 'item')}_{uuid.uuid4().hex}"


def as_items(request_input: Any) -> list[Any]:
    """The input as a list of items: a string is one user message."""
    if request_input is None:
        return []
    if isinstance(request_input, str):
        return [{"type": "message", "role": "user", "content": request_input}]
    return list(request_input) if isinstance(request_input, list) else []


def input_item_resources(request_input: Any) -> list[dict[str, Any]]:
    return [stored_item(item) for item in as_items(request_input) if isinstance(item, Mapping)]


def stored_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """One input item as stored and listed: typed, with an id and a status."""
    out = dict(item)
    kind = out.setdefault("type", "message")
    if kind == "message":
        assistant = out.get("role") == "assistant"
        out["content"] = _parts(out.get("content"), "output_text" if assistant else "input_text")
    out.setdefault("status", "completed")
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = new_item_id(str(kind))
    if kind == "reasoning":
        out.setdefault("summary", [])
        if out.get("encrypted_content") is None:
            out.pop("encrypted_content", None)  # a string or absent, as the schema has it
    return out


def _parts(content: Any, text_type: str) -> Any:
    if isinstance(content, str):
        content = [{"type": text_type, "text": content}]
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "output_text":
            part = {"annotations": [], "logprobs": [], **part}
        parts.append(part)
    return parts
