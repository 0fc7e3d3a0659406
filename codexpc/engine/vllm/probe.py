"""At load: ask each back end what it serves (`GET /v1/models`), for the model id and its
max_model_len. vLLM's ModelCard carries `max_model_len` (vllm/entrypoints/openai/models/protocol.py).

A back end that does not answer is not fatal while another one does, or while the config gives
the context length: vLLM takes minutes to load gpt-oss-120b, and the daemon should not wait for
every replica. It starts "down" and is tried again after the first backoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ModelsAnswer:
    model_id: str | None = None
    max_model_len: int | None = None
    error: str | None = None  # why the back end could not be asked; the rest is None then


def probe_models(client: httpx.Client, url: str, served_model: str | None) -> ModelsAnswer:
    try:
        response = client.get(url + "/v1/models")
    except httpx.HTTPError as exc:
        return ModelsAnswer(error=f"GET /v1/models: {type(exc).__name__}: {exc or 'failed'}")
    if response.status_code != 200:
        return ModelsAnswer(error=f"GET /v1/models: HTTP {response.status_code}")
    try:
        cards = response.json()["data"]
        assert isinstance(cards, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        return ModelsAnswer(error="GET /v1/models: not an OpenAI model list")
    cards = [c for c in cards if isinstance(c, dict) and isinstance(c.get("id"), str)]
    chosen = [c for c in cards if c["id"] == served_model] if served_model else cards[:1]
    if not chosen:
        listed = ", ".join(c["id"] for c in cards) or "none"
        return ModelsAnswer(error=f"serves no model {served_model!r} (it lists {listed})")
    length = chosen[0].get("max_model_len")
    valid = isinstance(length, int) and not isinstance(length, bool) and length > 0
    return ModelsAnswer(chosen[0]["id"], length if valid else None)
