"""The Ollama endpoints `codex --oss` probes, so that Codex's Ollama mode runs on codexpc.

Codex (ollama mode) checks `GET /` and `GET /api/version` (at least 0.13.4), lists models with
`GET /api/tags` (or `/v1/models` when its base URL ends in /v1), and pulls a model it does not see
with `POST /api/pull`, read as NDJSON until `{"status":"success"}`. codexpc never downloads: a
pull of a model it serves succeeds at once, any other pull is an `{"error": ...}` line, which
Codex shows as "Pull failed: ..." (Ollama itself answers a failed pull with 200 and that line).

Include with `app.include_router(ollama_router(runtime))`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from codexpc.errors import CodexpcError, RequestError
from codexpc.server.body import parse_body
from codexpc.server.runtime import ModelEntry, Runtime

# Codex refuses an Ollama older than 0.13.4 (its Responses API support); we speak that API.
OLLAMA_VERSION = "0.13.4"


def local_model_names(name: str) -> tuple[str, ...]:
    """The names local servers give a model: "gpt-oss-20b" is Ollama's "gpt-oss:20b" and
    LM Studio's "openai/gpt-oss-20b", the defaults of `codex --oss`."""
    head, dash, size = name.rpartition("-")
    names = [f"{head}:{size}"] if dash and head else []
    if name.startswith("gpt-oss"):
        names.append(f"openai/{name}")
    return tuple(names)


def served_names(runtime: Runtime) -> list[str]:
    """Every name a request may use, each model's own name first."""
    names: list[str] = []
    for entry in runtime.models:
        for name in (entry.name, *entry.aliases, *local_model_names(entry.name)):
            if name not in names:
                names.append(name)
    return names


def _tag(name: str, entry: ModelEntry) -> dict[str, Any]:
    modified = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created or time.time()))
    return {"name": name, "model": name, "modified_at": modified, "size": 0, "digest": "",
            "details": {"format": "codexpc", "family": "gpt-oss", "parameter_size": "", "quantization_level": "MXFP4"}}


def ollama_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("Ollama is running (codexpc)")

    @router.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": OLLAMA_VERSION}

    @router.get("/api/tags")
    async def tags() -> dict[str, Any]:
        models = []
        for entry in runtime.models:
            for name in (entry.name, *entry.aliases, *local_model_names(entry.name)):
                models.append(_tag(name, entry))
        return {"models": models}

    @router.post("/api/pull")
    async def pull(request: Request) -> Response:
        body = parse_body(await request.body())
        model = body.get("model", body.get("name"))
        if not isinstance(model, str) or not model:
            raise RequestError("`model` must name a model", param="model")
        lines = _pull_lines(runtime, model)
        if body.get("stream") is False:
            return JSONResponse(lines[-1])
        return StreamingResponse(_ndjson(lines), media_type="application/x-ndjson")

    return router


def _pull_lines(runtime: Runtime, model: str) -> list[dict[str, str]]:
    """What a pull reports: success for a served model, else why codexpc will not download it."""
    try:
        entry = resolve_any(runtime, model)
    except CodexpcError:
        served = ", ".join(served_names(runtime))
        return [{"error": f"codexpc does not serve {model!r} and never downloads models; it serves: {served}. "
                          "Run Codex with -m and one of those names, or configure that model in codexpc."}]
    return [{"status": f"{model} is served by codexpc ({entry.name}); nothing to download"}, {"status": "success"}]


def resolve_any(runtime: Runtime, requested: str) -> ModelEntry:
    """The served model under any of its names, local servers' names included."""
    for entry in runtime.models:
        if requested in local_model_names(entry.name):
            return entry
    return runtime.resolve_model(requested)


def _ndjson(lines: list[dict[str, str]]) -> Iterator[bytes]:
    for line in lines:
        yield (json.dumps(line) + "\n").encode()
