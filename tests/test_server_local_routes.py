"""The Ollama and LM Studio endpoints `codex --oss` probes, on a real app with the scripted engine."""

from __future__ import annotations

import json

import httpx
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.lmstudio_routes import lmstudio_router, model_cards
from codexpc.server.ollama_routes import OLLAMA_VERSION, local_model_names, ollama_router
from codexpc.server.runtime import ModelEntry, Runtime


def _client(encoding: HarmonyEncoding) -> tuple[httpx.AsyncClient, Runtime]:
    entry = ModelEntry("gpt-oss-20b", 131072, aliases=("gpt-oss:20b", "openai/gpt-oss-20b"))
    runtime = Runtime(ScriptedEngine(encoding), encoding, models=[entry])
    app = create_app(runtime)
    app.include_router(ollama_router(runtime))
    app.include_router(lmstudio_router(runtime))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"), runtime


def test_local_names_are_the_defaults_of_codex_oss() -> None:
    assert local_model_names("gpt-oss-20b") == ("gpt-oss:20b", "openai/gpt-oss-20b")
    assert local_model_names("tiny") == ()


async def test_ollama_probes_and_a_pull_of_a_served_model_succeed_at_once(encoding: HarmonyEncoding) -> None:
    client, _ = _client(encoding)
    async with client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/api/version")).json() == {"version": OLLAMA_VERSION}
        names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert {"gpt-oss-20b", "gpt-oss:20b", "openai/gpt-oss-20b"} <= set(names)
        pulled = await client.post("/api/pull", json={"model": "gpt-oss:20b", "stream": True})
        lines = [json.loads(line) for line in pulled.text.splitlines()]
        assert pulled.status_code == 200 and lines[-1] == {"status": "success"}
        assert (await client.post("/api/pull", json={"name": "gpt-oss:20b", "stream": False})).json() == \
            {"status": "success"}


async def test_a_pull_of_anything_else_is_a_clear_error_never_a_download(encoding: HarmonyEncoding) -> None:
    client, _ = _client(encoding)
    async with client:
        pulled = await client.post("/api/pull", json={"model": "llama3:70b", "stream": True})
        line = json.loads(pulled.text.splitlines()[-1])
        assert "error" in line and "never downloads" in line["error"] and "gpt-oss:20b" in line["error"]
        assert (await client.post("/api/pull", json={"stream": True})).status_code == 400


async def test_lmstudio_listing_and_the_warm_up_request(encoding: HarmonyEncoding) -> None:
    client, runtime = _client(encoding)
    async with client:
        ids = [card["id"] for card in model_cards(runtime)]
        assert ids == ["gpt-oss-20b", "gpt-oss:20b", "openai/gpt-oss-20b"]
        v0 = (await client.get("/api/v0/models")).json()["data"]
        assert v0[2]["id"] == "openai/gpt-oss-20b" and v0[2]["state"] == "loaded"
        warm = await client.post("/v1/responses", json={"model": "openai/gpt-oss-20b", "input": "",
                                                        "max_output_tokens": 1})
        assert warm.status_code == 200, warm.text
        assert warm.json()["status"] in ("incomplete", "completed")
