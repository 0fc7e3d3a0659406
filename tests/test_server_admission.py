"""The admission queue: FIFO past max_in_flight, 503 server_is_overloaded past the queue, leavers."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from codexpc.server.admission import (
    Admission,
    AdmissionLimits,
    AdmissionMiddleware,
    HoldingSwitch,
    ServerOverloadedError,
)


async def test_requests_past_max_in_flight_wait_in_arrival_order() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_queued=3))
    first = await admission.admit()
    order: list[int] = []

    async def wait(n: int) -> None:
        ticket = await admission.admit()
        order.append(n)
        await asyncio.sleep(0)
        ticket.release()

    waiters = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert admission.queued == 3 and order == []
    first.release()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2] and admission.running == 0


async def test_past_the_queue_a_503_that_codex_retries() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_queued=1))
    held = await admission.admit()
    queued = asyncio.create_task(admission.admit())
    await asyncio.sleep(0)
    with pytest.raises(ServerOverloadedError) as refused:
        await admission.admit()
    assert (refused.value.http_status, refused.value.code) == (503, "server_is_overloaded")
    held.release()
    (await queued).release()
    assert admission.running == 0


async def test_a_waiter_that_leaves_or_times_out_gives_its_turn_on() -> None:
    admission = Admission(AdmissionLimits(max_in_flight=1, max_queued=4, max_wait_s=0.05))
    held = await admission.admit()
    leaver = asyncio.create_task(admission.admit())
    await asyncio.sleep(0)
    leaver.cancel()
    with pytest.raises(ServerOverloadedError):  # waited past max_wait_s
        await admission.admit()
    assert admission.queued == 0
    held.release()
    held.release()  # a second release does nothing
    assert admission.running == 0
    (await admission.admit()).release()


async def test_the_middleware_refuses_with_an_openai_error_body_and_passes_other_paths() -> None:
    app = FastAPI()
    gate = asyncio.Event()

    @app.post("/v1/responses")
    async def slow() -> dict[str, bool]:
        await gate.wait()
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    wrapped = AdmissionMiddleware(app, Admission(AdmissionLimits(max_in_flight=1, max_queued=0)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as client:
        running = asyncio.create_task(client.post("/v1/responses", json={}))
        await asyncio.sleep(0.05)
        refused = await client.post("/v1/responses", json={})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_is_overloaded"
        assert refused.headers["retry-after"] == "1"
        assert (await client.get("/health")).status_code == 200
        gate.set()
        assert (await running).json() == {"ok": True}


async def test_the_holding_switch_holds_model_requests_until_the_model_is_ready() -> None:
    loading, ready = FastAPI(), FastAPI()

    @loading.post("/v1/responses")
    async def refuse() -> dict[str, str]:
        return {"state": "loading"}

    @ready.post("/v1/responses")
    async def serve() -> dict[str, str]:
        return {"state": "ready"}

    switch = HoldingSwitch(loading, hold_s=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=switch), base_url="http://t") as client:
        held = asyncio.create_task(client.post("/v1/responses", json={}))
        await asyncio.sleep(0.05)
        assert not held.done()
        switch.ready(ready)
        assert (await held).json() == {"state": "ready"}
    short = HoldingSwitch(loading, hold_s=0.01)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=short), base_url="http://t") as client:
        assert (await client.post("/v1/responses", json={})).json() == {"state": "loading"}
