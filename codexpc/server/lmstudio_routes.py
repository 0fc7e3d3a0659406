"""The LM Studio endpoints `codex --oss --local-provider lmstudio` uses, served by codexpc.

Codex (lmstudio mode) probes `GET /v1/models` and needs the model among `data[].id` (its default
is `openai/gpt-oss-20b`; a missing one sends it to the `lms` program to download), then loads the
model with a warm-up `POST /v1/responses {"model": M, "input": "", "max_output_tokens": 1}` before
the streamed turn. The warm-up goes to the ordinary /v1/responses route (an empty input renders
fine); what LM Studio adds is its model listing under every local name, here and under
LM Studio's own `/api/v0/models`.

Include with `app.include_router(lmstudio_router(runtime))`, and list aliases as model ids in
/v1/models (`model_cards` below; /work/notes/codex-wiring.patch).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from codexpc.server.ollama_routes import local_model_names
from codexpc.server.runtime import Runtime


def model_cards(runtime: Runtime) -> list[dict[str, Any]]:
    """/v1/models' `data`: one card per name a request may use, so that clients which look a
    model up by id (LM Studio mode, Ollama mode on /v1) find it under their own name."""
    cards: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in runtime.models:
        for name in (entry.name, *entry.aliases, *local_model_names(entry.name)):
            if name in seen:
                continue
            seen.add(name)
            cards.append({"id": name, "object": "model", "created": entry.created, "owned_by": "codexpc",
                          "context_window": entry.context_length, "aliases": list(entry.aliases),
                          **({"root": entry.name} if name != entry.name else {})})
    return cards


def lmstudio_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v0/models")
    async def models_v0() -> dict[str, Any]:
        data = [{**card, "type": "llm", "state": "loaded", "max_context_length": card["context_window"],
                 "arch": "gpt-oss", "publisher": "openai"} for card in model_cards(runtime)]
        return {"object": "list", "data": data}

    return router
