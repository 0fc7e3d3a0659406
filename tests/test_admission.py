"""Admission control: past max_in_flight requests wait in FIFO order; past the queue, and when the
engine's own queue is full, a 503 `server_is_overloaded` with Retry-After; a 503 while shutting down.

What the Codex CLI does with them (read in openai/codex, codex-rs): every version retries 5xx and
transport errors (request_max_retries, backoff from 200 ms); 0.140-0.155 end the turn on the
first 429 (0.163+ honour its Retry-After). So nothing here answers 429: a request that can wait,
waits; one that cannot gets the 503 that every version retries.
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


async def test_beyond_max_in_flight_requests_wait_in_order_then_complete(encoding: HarmonyEncoding) -> None:
    # Slow playback: the first two requests are still streaming when the next ones arrive.
    runtime = Runtime(ScriptedEngine(encoding, delay_s=0.05), encoding, limits=RequestLimits(max_in_flight=2))
    async with client(runtime) as http:
        streams = [asyncio.create_task(http.post("/v1/responses", json={"input": "hi", "stream": True}))
                   for _ in range(2)]
        while runtime.in_flight < 2:
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(http.post("/v1/responses", json={"input": "hi", "stream": True}))
        chat = asyncio.create_task(http.post("/v1/chat/completions",
                                             json={"messages": [{"role": "user", "content": "hi"}]}))
        await asyncio.sleep(0.05)
        assert runtime.admission.queued == 2 and runtime.in_flight == 2  # waiting, not refused
        finished = await asyncio.gather(*streams, queued, chat)
    assert all(r.status_code == 200 for r in finished)
    assert all("response.completed" in r.text for r in finished[:3])
    assert finished[3].json()["choices"][0]["finish_reason"] == "stop"
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


async def test_past_the_queue_is_503_server_is_overloaded_with_retry_after(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding, delay_s=0.05), encoding,
                      limits=RequestLimits(max_in_flight=1, queue_size=1))
    async with client(runtime) as http:
        running = asyncio.create_task(http.post("/v1/responses", json={"input": "hi", "stream": True}))
        while runtime.in_flight < 1:
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(http.post("/v1/responses", json={"input": "hi"}))
        while runtime.admission.queued < 1:
            await asyncio.sleep(0.01)
        refused = await http.post("/v1/responses", json={"input": "hi", "stream": True})
        done = await asyncio.gather(running, queued)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "server_is_overloaded"
    assert [r.status_code for r in done] == [200, 200]


async def test_after_shutdown_began_requests_get_503_with_retry_after(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding), encoding)
    await runtime.close()
    async with client(runtime) as http:
        reply = await http.post("/v1/responses", json={"input": "hi"})
    assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "service_unavailable"
    assert runtime.metrics.in_flight == 0


async def test_refusals_are_not_retried_into_the_engine(encoding: HarmonyEncoding) -> None:
    """Many clients at once against 3 running and 3 queued: every reply is a completion or a clean 503."""
    engine = ScriptedEngine(encoding, delay_s=0.01)
    runtime = Runtime(engine, encoding, limits=RequestLimits(max_in_flight=3, queue_size=3))
    async with client(runtime) as http:
        replies = await asyncio.gather(*(http.post("/v1/responses", json={"input": "hi"}) for _ in range(12)))
    statuses = sorted(r.status_code for r in replies)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 6
    assert engine.stats()["submitted"] == statuses.count(200)
    assert runtime.in_flight == 0

