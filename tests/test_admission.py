"""Admission control: a bounded number of requests at once; beyond it a 429 with Retry-After and
the OpenAI body Codex reads (`rate_limit_exceeded`); a 503 with Retry-After while shutting down.

What the Codex CLI does with them (read in openai/codex, codex-rs): its HTTP retry policy for a
custom provider retries 5xx and transport errors (request_max_retries, 4 by default, backoff from
200 ms) but not 429 (`retry_429: false`); a 429 ends the turn with the error's message. So a 429
reaches the user at once with our message, and a 503 is retried a few times within seconds.
"""

from __future__ import annotations

import asyncio

import httpx
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.request import RequestLimits
from codexpc.server.runtime import Runtime


def client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://127.0.0.1")


async def test_beyond_max_in_flight_is_429_with_retry_after(encoding: HarmonyEncoding) -> None:
    # Slow playback: the first two requests are still streaming when the third arrives.
    runtime = Runtime(ScriptedEngine(encoding, delay_s=0.05), encoding, limits=RequestLimits(max_in_flight=2))
    async with client(runtime) as http:
        streams = [asyncio.create_task(http.post("/v1/responses", json={"input": "hi", "stream": True}))
                   for _ in range(2)]
        while runtime.in_flight < 2:
            await asyncio.sleep(0.01)
        refused = await http.post("/v1/responses", json={"input": "hi", "stream": True})
        chat = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        finished = await asyncio.gather(*streams)
        after = await http.post("/v1/responses", json={"input": "hi"})
    for reply in (refused, chat):
        assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
        error = reply.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
        assert "max_in_flight" in error["message"]
    assert all(r.status_code == 200 and "response.completed" in r.text for r in finished)
    assert after.status_code == 200 and after.json()["status"] == "completed"
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


async def test_a_full_engine_queue_is_429_and_refuses_before_any_stream(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding), encoding, limits=RequestLimits(queue_size=0))
    async with client(runtime) as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "stream": True})
    assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
    assert reply.headers["content-type"] == "application/json"  # an error body, not an event stream
    assert runtime.engine.stats()["submitted"] == 0


async def test_after_shutdown_began_requests_get_503_with_retry_after(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding), encoding)
    await runtime.close()
    async with client(runtime) as http:
        reply = await http.post("/v1/responses", json={"input": "hi"})
    assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "service_unavailable"
    assert runtime.metrics.in_flight == 0


async def test_refusals_are_not_retried_into_the_engine(encoding: HarmonyEncoding) -> None:
    """Many clients at once against a limit of 3: every reply is a completion or a clean 429."""
    engine = ScriptedEngine(encoding, delay_s=0.01)
    runtime = Runtime(engine, encoding, limits=RequestLimits(max_in_flight=3))
    async with client(runtime) as http:
        replies = await asyncio.gather(*(http.post("/v1/responses", json={"input": "hi"}) for _ in range(12)))
    statuses = sorted(r.status_code for r in replies)
    assert set(statuses) == {200, 429} and statuses.count(200) >= 3
    assert engine.stats()["submitted"] == statuses.count(200)
    assert runtime.in_flight == 0

