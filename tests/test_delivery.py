"""Tokens from an engine's worker thread to the event loop (engine/threaded_generation.py)."""

from __future__ import annotations

import asyncio
import threading
from functools import partial

from codexpc.engine.api import TokenEvent
from codexpc.engine.threaded_generation import ThreadedGeneration, one_wakeup


def on_worker(fn) -> None:
    worker = threading.Thread(target=fn)
    worker.start()
    worker.join()


def count_wakeups(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Counts call_soon_threadsafe on `loop` (each one a write to its self-pipe)."""
    calls = [0]
    original = loop.call_soon_threadsafe

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    return calls


async def test_a_step_of_many_sequences_wakes_the_loop_once_and_keeps_each_order() -> None:
    loop = asyncio.get_running_loop()
    generations = [ThreadedGeneration(f"r{i}", 1, loop) for i in range(8)]
    wakeups = count_wakeups(loop)

    def step(n: int) -> None:
        with one_wakeup():
            for g in generations:
                g.deliver_threadsafe(TokenEvent(100 + n, "stop" if n == 2 else None))

    for n in range(3):
        on_worker(partial(step, n))
        await asyncio.sleep(0)  # the loop takes the step in
    assert wakeups[0] == 3  # one per step, not one per token
    for g in generations:
        assert [(e.token_id, e.finish_reason) for e in await g.ready()] == [(100, None), (101, None), (102, "stop")]
        g._deliver(TokenEvent(1, None))
        assert not g._ready  # nothing counts after the finish


async def test_without_one_wakeup_deliveries_still_share_a_pending_wakeup() -> None:
    loop = asyncio.get_running_loop()
    generation = ThreadedGeneration("r", 1, loop)
    wakeups = count_wakeups(loop)
    on_worker(lambda: [generation.deliver_threadsafe(TokenEvent(t, None)) for t in range(5)])
    assert wakeups[0] == 1  # the loop had not run yet: the first wake-up carries all five
    assert [e.token_id for e in await generation.ready()] == [0, 1, 2, 3, 4]


async def test_iterating_yields_every_token_in_order_until_the_finish() -> None:
    loop = asyncio.get_running_loop()
    generation = ThreadedGeneration("r", 1, loop)

    def produce() -> None:
        for t in range(50):
            generation.deliver_threadsafe(TokenEvent(t, "length" if t == 49 else None))

    threading.Thread(target=produce).start()
    assert [e.token_id async for e in generation] == list(range(50))


async def test_a_cancelled_generation_drops_its_pending_events() -> None:
    loop = asyncio.get_running_loop()
    cancelled = threading.Event()
    generation = ThreadedGeneration("r", 1, loop, on_cancel=cancelled.set)
    on_worker(lambda: generation.deliver_threadsafe(TokenEvent(7, None)))
    await generation.cancel()  # before the loop ran the delivery
    assert cancelled.is_set()
    on_worker(lambda: generation.deliver_threadsafe(TokenEvent(8, None)))
    await asyncio.sleep(0)  # the inbox's flush runs
    events = await generation.ready()
    assert [(e.token_id, e.finish_reason) for e in events] == [(None, "cancelled")]


async def test_a_reader_waiting_for_a_token_is_cancelled_cleanly() -> None:
    generation = ThreadedGeneration("r", 1, asyncio.get_running_loop())
    reader = asyncio.ensure_future(generation.ready())
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    on_worker(lambda: generation.deliver_threadsafe(TokenEvent(3, "stop")))
    assert [e.token_id for e in await generation.ready()] == [3]


def test_delivering_to_a_closed_loop_says_nobody_listens() -> None:
    loop = asyncio.new_event_loop()
    generation = ThreadedGeneration("r", 1, loop)
    loop.close()
    results: list[bool] = []
    on_worker(lambda: results.append(generation.deliver_threadsafe(TokenEvent(1, None))))
    assert results == [False]


async def test_sse_chunks_go_straight_to_the_servers_send() -> None:
    from codexpc.server.app import SSEResponse

    async def body():
        yield b"event: a\n\n"
        yield b"event: b\n\n"

    async def receive() -> dict:
        await asyncio.sleep(3600)  # the client stays
        return {"type": "http.disconnect"}

    wrapped: list[dict] = []
    server: list[dict] = []

    async def wrapped_send(message: dict) -> None:
        wrapped.append(message)

    async def server_send(message: dict) -> None:
        server.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "codexpc_send": server_send}
    await SSEResponse(body(), media_type="text/event-stream")(scope, receive, wrapped_send)
    assert [m["type"] for m in wrapped] == ["http.response.start", "http.response.body"]
    assert wrapped[-1]["more_body"] is False  # the end goes through the middleware, as the start did
    assert [m["body"] for m in server] == [b"event: a\n\n", b"event: b\n\n"]
