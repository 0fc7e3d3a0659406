"""Clients that go away at any moment free their sequences at once: after 200 random
cancellations under load (the tiny checkpoint on the CPU, a real uvicorn on loopback), the
engine's running and waiting sequences and its KV memory are back at their idle values.

Each client sends a streaming request and closes its connection after a random delay: before
the response starts (queued or rendering), at the response's start (prefill) or while tokens
are coming (decode). A few run to their end, so the server is under load throughout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import serve_in_thread
from openai_harmony import HarmonyEncoding

from codexpc.engine.api import Engine
from codexpc.engine.factory import create_engine
from codexpc.harmony.render import RenderOptions
from codexpc.server.app import create_app
from codexpc.server.runtime import Runtime

CANCELLATIONS = 200
CONCURRENCY = 8
BODY = {"input": "hi", "stream": True, "max_output_tokens": 24, "temperature": 0}


async def one_client(http: httpx.AsyncClient, rng: random.Random, seen: dict[str, int]) -> None:
    """One request, abandoned at a random moment; counts at which stage it was abandoned."""
    stage = rng.choice(["before response", "at response start", "during tokens", "during tokens"])
    try:
        async with asyncio.timeout(rng.uniform(0.0, 0.02)) if stage == "before response" else _nothing():
            async with http.stream("POST", "/v1/responses", json=BODY) as reply:
                assert reply.status_code == 200, await reply.aread()
                if stage == "during tokens":
                    await asyncio.sleep(rng.uniform(0.02, 0.3))
                # Leaving the block unread closes the connection: the server sees a disconnect.
    except TimeoutError:
        pass
    seen[stage] = seen.get(stage, 0) + 1


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def cancel_many(base_url: str, count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        remaining = iter(range(count))

        async def worker() -> None:
            for _ in remaining:
                await one_client(http, rng, seen)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        # One full request after the storm: the engine still serves it to its end. Random weights
        # decide how that end looks (the prompt holds today's date, so it changes by the day):
        # the token limit, or a token that breaks Harmony; either way the model ran the request.
        final = await http.post("/v1/responses", json={**BODY, "stream": False})
        body = final.json()
        assert final.status_code == 200, body
        assert (body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}) or (
            body["status"] == "failed" and body["error"]["code"] == "invalid_model_output"), body
    return seen


# What a sequence holds, by engine: the paged engine's blocks (blocks kept for the prefix cache
# are free: they are reused or evicted on demand).
HELD = {"paged": "kv_blocks_used"}


def wait_idle(engine: Engine, runtime: Runtime, idle: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    held = HELD[engine.info.kind]
    while True:
        stats = engine.stats()
        if (stats["running"], stats["waiting"], stats[held], runtime.in_flight) == (0, 0, idle[held], 0):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"not idle after {timeout_s}s: {stats}, in flight {runtime.in_flight}, idle {idle}")
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["paged"])
def test_200_random_cancellations_leave_the_engine_idle(
    tiny_checkpoint: Path, kind: str, encoding: HarmonyEncoding
) -> None:
    engine = create_engine(kind, model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    # The prompt holds the date, and random weights answer each prompt differently: pin it.
    runtime = Runtime(engine, encoding, render_options=RenderOptions(current_date="2026-11-25"))
    idle = engine.stats()
    with serve_in_thread(create_app(runtime)) as base_url:
        started = time.monotonic()
        seen = asyncio.run(cancel_many(base_url, CANCELLATIONS, seed=7))
        elapsed = time.monotonic() - started
        after = wait_idle(engine, runtime, idle)
    assert sum(seen.values()) == CANCELLATIONS and len(seen) == 3, seen
    assert after.get("device_memory_bytes") == idle.get("device_memory_bytes")
    assert after[HELD[kind]] == idle[HELD[kind]] == 0
    metrics = runtime.metrics.render(engine.stats(), 0.0)
    cancelled = sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("codexpc_requests_total") and 'outcome="cancelled"' in line)
    # Some clients leave only after their sequence ended; all the rest were cut mid-way.
    assert cancelled >= CANCELLATIONS // 2, metrics
    print(f"{CANCELLATIONS} cancellations in {elapsed:.1f}s: {seen}; cancelled mid-generation: {cancelled}; "
          f"tokens generated: {after['tokens_generated']}")
    asyncio.run(engine.close())


async def test_a_client_gone_before_its_body_was_read_is_no_error(
    caplog: pytest.LogCaptureFixture, encoding: HarmonyEncoding
) -> None:
    """The daemon's middleware reads the body first; a disconnect then reaches the route as
    ClientDisconnect, which was logged as an unexpected error with its traceback."""
    from codexpc.engine.scripted import ScriptedEngine
    from codexpc.server.security import Policy, SecurityMiddleware

    caplog.set_level(logging.INFO)
    runtime = Runtime(ScriptedEngine(encoding), encoding)
    app = SecurityMiddleware(create_app(runtime), Policy("unix", frozenset()))
    scope = {"type": "http", "method": "POST", "path": "/v1/responses", "raw_path": b"/v1/responses",
             "query_string": b"", "headers": [(b"content-type", b"application/json")], "http_version": "1.1",
             "scheme": "http", "server": ("codexpc", 80), "client": None, "root_path": ""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert "client gone before its request was read" in caplog.text
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0 and runtime.engine.stats()["submitted"] == 0
