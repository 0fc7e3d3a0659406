"""The "vllm" engine against stand-in vLLM servers on real loopback sockets (tests/vllm_standin.py):
the same tokens as the local paged engine, streaming, cancellation, failures, routing, failover."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from live_server import serve_in_thread
from vllm_standin import Faults, StandinLog, create_standin, events_of

from codexpc.config.schema import RemoteEngineConfig
from codexpc.engine.api import Engine, SamplingParams, TokenEvent
from codexpc.engine.factory import create_engine
from codexpc.engine.vllm import VllmEngine, build_vllm_engine
from codexpc.errors import ConfigError
from codexpc.server.metrics import Metrics

STOPS = frozenset({200002, 200012})  # <|return|>, <|call|>
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=8, stop_token_ids=STOPS)
PROMPT = [5, 17, 200000, 3, 99, 1234, 7, 7, 42, 1000, 11, 12, 13]


@pytest.fixture(scope="module")
def paged(tiny_checkpoint: Path) -> Iterator[Engine]:
    """The local engine the stand-ins replay (one for the module: building it takes seconds)."""
    engine = create_engine("paged", model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    yield engine
    asyncio.run(engine.close())


@dataclass
class Standin:
    url: str
    faults: Faults
    log: StandinLog


@contextmanager
def standins(paged: Engine, count: int = 1, **kwargs: Any) -> Iterator[list[Standin]]:
    with ExitStack() as stack:
        found = []
        for _ in range(count):
            app, faults, log = create_standin(paged, **kwargs)
            found.append(Standin(stack.enter_context(serve_in_thread(app)), faults, log))
        yield found


def vllm(*urls: str, **settings: Any) -> VllmEngine:
    return build_vllm_engine("gpt-oss-120b", RemoteEngineConfig(backends=urls, **settings))


async def run(engine: Engine, params: SamplingParams = GREEDY, rid: str = "r", prompt: list[int] = PROMPT
              ) -> list[TokenEvent]:
    return [event async for event in events_of(engine.submit(prompt, params, rid))]


def ids(events: list[TokenEvent]) -> list[int]:
    return [e.token_id for e in events if e.token_id is not None]


def dead_url() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("route", ["generate", "completions", "completions-logprobs"])
async def test_standin_tokens_equal_the_local_paged_engine(paged: Engine, route: str) -> None:
    seeded = SamplingParams(temperature=1.0, top_p=0.9, seed=7, max_new_tokens=10, stop_token_ids=STOPS)
    with standins(paged, generate_route=route == "generate") as [server]:
        server.faults.ids_in_logprobs_only = route == "completions-logprobs"
        engine = vllm(server.url)
        for params in (GREEDY, seeded):
            remote = await run(engine, params, rid=f"{route}-{params.seed}")
            local = await run(paged, params, rid=f"local-{route}-{params.seed}")
            assert ids(remote) == ids(local) and remote[-1].finish_reason == local[-1].finish_reason == "length"
        await engine.close()
    wire, body = server.log.requests[-1]
    assert wire == route.partition("-")[0]
    sampling = body["sampling_params"] if wire == "generate" else body
    assert sampling["stop_token_ids"] == sorted(STOPS) and sampling["seed"] == 7 and sampling["max_tokens"] == 10
    assert body["stream"] is True and body["model"] == "openai/gpt-oss-120b"
    if wire == "generate":
        assert body["token_ids"] == PROMPT and sampling["detokenize"] is False
    else:
        assert body["prompt"] == PROMPT and body["return_token_ids"] is True
    assert engine.stats()["backends"][0]["route"] == wire


async def test_tokens_stream_as_they_arrive(paged: Engine) -> None:
    with standins(paged, stream_interval=1) as [server]:
        server.faults.chunk_delay_s = 0.3
        engine = vllm(server.url)
        generation = engine.submit(PROMPT, GREEDY, "streamed")
        events = events_of(generation)
        first = await anext(events)
        assert first.token_id is not None and first.finish_reason is None
        assert "streamed" not in server.log.completed  # the back end is still generating
        rest = [e async for e in events]
        assert len(ids([first, *rest])) == GREEDY.max_new_tokens and "streamed" in server.log.completed
        await engine.close()


async def test_cancel_closes_the_stream_and_the_backend_aborts(paged: Engine) -> None:
    long = SamplingParams(temperature=0.0, max_new_tokens=200, stop_token_ids=STOPS)
    with standins(paged, stream_interval=1) as [server]:
        server.faults.chunk_delay_s = 0.1
        engine = vllm(server.url)
        generation = engine.submit(PROMPT, long, "to-cancel")
        events = events_of(generation)
        assert (await anext(events)).token_id is not None
        await generation.cancel()
        assert [e async for e in events][-1].finish_reason == "cancelled"
        await wait_for(lambda: "to-cancel" in server.log.aborted)
        stats = engine.stats()
        assert stats["running"] == 0 and stats["cancelled"] == 1 and stats["backends"][0]["in_flight"] == 0
        assert stats["backends"][0]["state"] == "up"  # a cancel is not the back end's failure
        await engine.close()


async def test_backend_dying_mid_stream_is_a_clean_error_and_the_engine_recovers(paged: Engine) -> None:
    with standins(paged) as [server]:
        server.faults.die_after_tokens = 4  # chunks of 3: one chunk arrives, then the connection drops
        engine = vllm(server.url, retry_initial_s=0.2)
        events = await run(engine, rid="dies")
        assert len(ids(events)) == 3 and events[-1].finish_reason == "error"
        assert "mid-stream" in (events[-1].error or "")
        backend = engine.stats()["backends"][0]
        assert backend["state"] == "down" and backend["failures"] == 1 and backend["in_flight"] == 0
        server.faults.die_after_tokens = None
        await asyncio.sleep(0.25)  # the backoff passes: the next request tries it again
        assert ids(await run(engine, rid="after")) == ids(await run(paged, rid="after-local"))
        assert engine.stats()["backends"][0]["state"] == "up"
        await engine.close()


async def test_slow_backend_times_out_cleanly(paged: Engine) -> None:
    with standins(paged) as [server]:
        server.faults.first_chunk_delay_s = 3.0
        engine = vllm(server.url, read_timeout_s=0.5)
        started = time.monotonic()
        events = await run(engine, rid="slow")
        assert time.monotonic() - started < 2.5
        assert events == [TokenEvent(None, "error", error=events[-1].error)]
        assert "timed out" in (events[-1].error or "") and engine.stats()["backends"][0]["state"] == "down"
        await engine.close()
        await wait_for(lambda: "slow" in server.log.aborted)  # our timeout closed the stream


@pytest.mark.parametrize("garbage", [
    "data: {not json\n\n",
    "this is not an event stream\n",
    'data: {"choices": "nope"}\n\n',
    'data: {"choices": [{"index": 0, "token_ids": [-4]}]}\n\n',
    'data: {"choices": [{"index": 0, "token_ids": [1, 2]}]}\n\n',  # then no [DONE]: cut short
    "data: " + "x" * (5 * 1024 * 1024),  # one endless line
])
async def test_garbage_answers_are_clean_failures(paged: Engine, garbage: str) -> None:
    with standins(paged) as [server]:
        server.faults.garbage = garbage
        engine = vllm(server.url)
        events = await run(engine, rid="garbage")
        assert events[-1].finish_reason == "error" and events[-1].error
        assert engine.stats()["backends"][0]["failures"] == 1
        await engine.close()


@pytest.mark.parametrize(("status", "fault"), [(500, True), (503, True), (400, False)])
async def test_http_errors_fail_cleanly_and_only_5xx_takes_the_backend_out(paged: Engine, status: int,
                                                                           fault: bool) -> None:
    with standins(paged) as [server]:
        server.faults.status = status
        engine = vllm(server.url)
        events = await run(engine, rid="status")
        assert events[-1].finish_reason == "error" and f"HTTP {status}" in (events[-1].error or "")
        assert (engine.stats()["backends"][0]["state"] == "down") is fault
        await engine.close()


async def test_one_conversation_sticks_to_one_backend(paged: Engine) -> None:
    short = SamplingParams(temperature=0.0, max_new_tokens=1, stop_token_ids=STOPS)
    with standins(paged, count=3) as servers:
        engine = vllm(*(s.url for s in servers))
        keys = [f"conversation-{i}" for i in range(12)]
        for turn in range(2):
            for key in keys:
                await run(engine, replace(short, routing_key=key), rid=f"{key}/{turn}")
        where = {key: {i for i, s in enumerate(servers) for r, b in s.log.requests if b["request_id"].startswith(key + "/")}
                 for key in keys}
        assert all(len(found) == 1 for found in where.values())  # both turns on one back end
        assert len(set.union(*where.values())) > 1  # and the conversations spread over them
        await engine.close()


async def test_failover_skips_a_failed_backend_and_retries_it_with_backoff(paged: Engine) -> None:
    with standins(paged, count=2) as servers:
        broken, healthy = servers
        broken.faults.status = 500
        engine = vllm(broken.url, healthy.url, retry_initial_s=1.0, retry_max_s=10.0)
        key = next(k for k in (f"k{i}" for i in range(100))
                   if engine.candidates(k)[0].url == broken.url)  # a conversation that prefers `broken`
        keyed = SamplingParams(temperature=0.0, max_new_tokens=4, stop_token_ids=STOPS, routing_key=key)
        events = await run(engine, keyed, rid="first")
        assert events[-1].finish_reason == "length"  # answered by `healthy`
        assert len(broken.log.requests) == 1 and len(healthy.log.requests) == 1
        down = engine.stats()["backends"][0]
        assert down["state"] == "down" and 0 < down["retry_in_s"] <= 1.0 and "HTTP 500" in down["last_error"]
        await run(engine, keyed, rid="within-backoff")
        assert len(broken.log.requests) == 1  # not asked while it is out
        await asyncio.sleep(1.05)
        await run(engine, keyed, rid="retried")
        assert len(broken.log.requests) == 2  # asked again, failed again: the backoff doubles
        again = engine.stats()["backends"][0]
        assert again["consecutive_failures"] == 2 and 1.0 < again["retry_in_s"] <= 2.0
        broken.faults.status = None
        await asyncio.sleep(2.05)
        await run(engine, keyed, rid="back")
        assert broken.log.requests[-1][1]["request_id"] == "back"  # the conversation came home
        assert engine.stats()["backends"][0]["state"] == "up" and engine.stats()["backends_up"] == 2
        await engine.close()


async def test_refused_connections_fail_over_and_all_down_is_one_clear_error(paged: Engine) -> None:
    with standins(paged) as [server]:
        gone = dead_url()
        engine = vllm(gone, server.url, retry_initial_s=5.0)  # `gone` starts out (its probe failed)
        assert engine.stats()["backends"][0]["state"] == "down"
        assert (await run(engine, rid="ok"))[-1].finish_reason == "length"
        server.faults.status = 502
        events = await run(engine, rid="both")
        assert events[-1].finish_reason == "error" and "HTTP 502" in (events[-1].error or "")
        events = await run(engine, rid="none-left")
        assert "all 2 vLLM back ends are out" in (events[-1].error or "")
        await engine.close()


async def test_stats_and_metrics_show_each_backend(paged: Engine) -> None:
    with standins(paged) as [server]:
        engine = vllm(server.url, dead_url())
        await run(engine, rid="m")
        stats = engine.stats()
        assert stats["backends_total"] == 2 and stats["backends_up"] == 1 and stats["finished"] == 1
        text = Metrics().render(stats, 1.0)
        assert f'codexpc_engine_backend_up{{backend="{server.url}"}} 1' in text
        assert f'codexpc_engine_backend_requests{{backend="{server.url}"}} 1' in text
        assert "codexpc_engine_backends_up 1" in text
        await engine.close()


def test_load_needs_a_context_length_from_a_backend_or_the_config() -> None:
    with pytest.raises(ConfigError, match="max_model_len"):
        vllm(dead_url())
    engine = vllm(dead_url(), context_length=8192)
    assert engine.info.context_length == 8192 and engine.stats()["backends"][0]["state"] == "down"


async def test_a_prompt_beyond_the_context_is_refused_at_submit(paged: Engine) -> None:
    from codexpc.errors import ContextLengthError

    with standins(paged, max_model_len=16) as [server]:
        engine = vllm(server.url)
        with pytest.raises(ContextLengthError):
            engine.submit(list(range(16)), GREEDY, "too-long")
        await engine.close()
