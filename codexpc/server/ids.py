"""Ids of requests and output items, as the OpenAI API shapes them."""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """A request or item id: "resp_…", "msg_…", "call_…"."""
    return f"{prefix}_{uuid.uuid4().hex}"
