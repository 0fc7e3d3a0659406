"""An out-of-memory on the GPU in one model step fails the affected request cleanly (a
response.failed with code `engine_out_of_memory`), the others go on, and the next request works.

No GPU here: `OomInjectingModel` is a fault-injection double around the paged engine's real
tiny model that raises torch.cuda.OutOfMemoryError, the exception a CUDA allocation failure
raises, on one step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from openai_harmony import HarmonyEncoding

from codexpc.checkpoint import open_checkpoint
from codexpc.engine.api import EngineInfo, SamplingParams
from codexpc.engine.model import Transformer
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.paged_engine import PagedEngine
from codexpc.engine.paged.paged_model import PagedModel
from codexpc.engine.scripted import ScriptedEngine, ScriptedGeneration
from codexpc.engine.weights import load_model
from codexpc.harmony.render import RenderOptions
from codexpc.server.app import create_app
from codexpc.server.errors import engine_failure
from codexpc.server.runtime import Runtime

OOM_MESSAGE = "CUDA out of memory. Tried to allocate 20.00 GiB (fault injected by the test)"


class OomInjectingModel:
    """Fault-injection double: the real paged model, except that step number `fail_at` raises."""

    def __init__(self, model: PagedModel, fail_at: int) -> None:
        self._model = model
        self._fail_at = fail_at
        self.calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        if self.calls == self._fail_at:
            raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)
        return self._model.forward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # cache, plan, config
        return getattr(self._model, name)


class OomRaisingScriptedEngine(ScriptedEngine):
    """Fault-injection double for engines whose iterator raises rather than reporting the error:
    the first `failures` generations raise after their first token; later ones play normally."""

    failures = 2

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ScriptedGeneration:
        generation = super().submit(prompt, params, request_id)
        if self.failures == 0:
            return generation
        self.failures -= 1
        play = generation._play

        async def failing() -> Any:
            async for event in play():
                yield event
                raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)

        generation._play = failing  # type: ignore[method-assign]
        return generation


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Transformer:
    return load_model(open_checkpoint(tiny_checkpoint), torch.device("cpu"))


def events_of(reply: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]


async def test_an_oom_in_one_step_fails_that_request_and_the_next_one_works(
        model: Transformer, encoding: HarmonyEncoding) -> None:
    info = EngineInfo(kind="paged", model="tiny", checkpoint="tiny", device="cpu", context_length=4096)
    # One sequence a step, so that the step that fails holds one request (a failing step fails
    # every sequence in it); the other waits, then runs. Step 4: the first one is decoding.
    engine = PagedEngine(model, CacheBudget(16, 256, 1, 2048, bytes_per_block=0), info)
    engine.runner.model = OomInjectingModel(engine.runner.model, fail_at=4)  # type: ignore[assignment]
    # The prompt holds the date, and random weights answer each prompt differently: pin it.
    runtime = Runtime(engine, encoding, render_options=RenderOptions(current_date="2026-11-25"))
    body = {"input": "hi", "stream": True, "max_output_tokens": 6, "temperature": 0}
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        first, second = await asyncio.gather(http.post("/v1/responses", json=body),
                                             http.post("/v1/responses", json=body))
        after = await http.post("/v1/responses", json=body)
        health = (await http.get("/health")).json()
    lasts = sorted(events_of(reply)[-1]["type"] for reply in (first, second))
    assert lasts == ["response.failed", "response.incomplete"]  # only the sequence that hit the OOM
    failed = next(events_of(r)[-1] for r in (first, second) if events_of(r)[-1]["type"] == "response.failed")
    error = failed["response"]["error"]
    assert error["code"] == "engine_out_of_memory" and "out of memory" in error["message"]
    assert after.status_code == 200 and events_of(after)[-1]["type"] == "response.incomplete"
    assert health["status"] == "ok" and health["engine"]["stats"]["running"] == 0
    assert health["engine"]["stats"]["kv_blocks_used"] == 0 and runtime.in_flight == 0
    assert 'outcome="failed"} 1' in runtime.metrics.render(engine.stats(), 0.0)
    await engine.close()


async def test_an_oom_raised_by_the_generation_is_a_failed_response_and_chat_error(
        encoding: HarmonyEncoding) -> None:
    runtime = Runtime(OomRaisingScriptedEngine(encoding), encoding)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "stream": True})
        chat = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        after = await http.post("/v1/responses", json={"input": "hi"})
    assert events_of(reply)[-1]["response"]["error"]["code"] == "engine_out_of_memory"
    # 503 with Retry-After: the daemon is fine and the memory frees as other requests end.
    assert chat.status_code == 503 and chat.json()["error"]["code"] == "engine_out_of_memory"
    assert after.status_code == 200 and after.json()["status"] == "completed"
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


def test_the_failure_code_names_the_out_of_memory() -> None:
    assert engine_failure(f"OutOfMemoryError: {OOM_MESSAGE}").code == "engine_out_of_memory"
    assert engine_failure("engine failure: RuntimeError('boom')").code == "engine_error"
