"""One request's path and its stable log lines (logger "codexpc.session"), and sampling options."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from openai.types.responses import ResponseStreamEvent
from openai_harmony import HarmonyEncoding
from pydantic import TypeAdapter

from codexpc.engine.api import SamplingParams, TokenEvent
from codexpc.engine.scripted import ScriptedEngine, ScriptedGeneration, fixed_scripts
from codexpc.errors import RequestError
from codexpc.harmony.events import Event, Stop, TextDelta, ToolArgumentsDelta, merge_deltas
from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.server.app import create_app
from codexpc.server.request import RequestLimits, Sampling, parse_chat, parse_responses
from codexpc.server.response_object import ResponseMeta
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.runtime import Runtime
from codexpc.server.session import Session

STRICT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
LINES = [
    r"request=(resp_\w+) harmony append tokens=\d+ user_parts=1 messages=\d+ dropped_reasoning=0",
    r"request=(resp_\w+) decoder start tools=0 constrained=no",
    r"request=(resp_\w+) stream start temperature=0.7 top_p=1.0 max_tokens=\d+ prompt_tokens=\d+ cached_tokens=0",
    r"request=(resp_\w+) first token id=200005 ms=[\d.]+",
    r"request=(resp_\w+) first delta len=\d+ kind=reasoning",
    r"request=(resp_\w+) end reason=return status=completed tokens=\d+ ms=[\d.]+",
]


async def test_each_request_logs_its_steps_in_a_stable_form(
    caplog: pytest.LogCaptureFixture, encoding: HarmonyEncoding
) -> None:
    app = create_app(Runtime(ScriptedEngine(encoding), encoding))
    caplog.set_level(logging.INFO, logger="codexpc.session")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "temperature": 0.7})
    messages = [r.getMessage() for r in caplog.records if r.name == "codexpc.session"]
    assert len(messages) == len(LINES), messages
    ids = set()
    for pattern, message in zip(LINES, messages, strict=True):
        match = re.fullmatch(pattern, message)
        assert match, (pattern, message)
        ids.add(match.group(1))
    assert ids == {reply.json()["id"]}


def _responses(body: dict[str, Any], limits: RequestLimits) -> Sampling:
    return parse_responses(json.dumps({"input": "hi", **body}).encode(), limits).sampling


def _chat(body: dict[str, Any], limits: RequestLimits) -> Sampling:
    return parse_chat(json.dumps({"messages": [{"role": "user", "content": "hi"}], **body}).encode(), limits).sampling


def test_sampling_options_from_responses_and_chat_bodies() -> None:
    none = RequestLimits()
    assert _responses({}, none) == Sampling()
    body = {"max_tokens": 50, "max_completion_tokens": 20, "temperature": 0, "top_p": 0.5, "seed": 7}
    assert _chat(body, none) == Sampling(20, 0.0, 0.5, 7)
    for bad in ({"seed": "x"}, {"top_p": 1.5}, {"temperature": "nan"}, {"max_output_tokens": 2.5}):
        with pytest.raises(RequestError):
            _responses(bad, none)
    with pytest.raises(RequestError):  # JSON has no NaN literal, but Python's parser takes one
        parse_responses(b'{"input": "hi", "temperature": NaN}', none)


def test_output_token_limits_give_a_default_and_refuse_too_much() -> None:
    limits = RequestLimits(max_output_tokens=100, default_max_output_tokens=10)
    assert _responses({}, limits).max_output_tokens == 10
    assert _responses({"max_output_tokens": 100}, limits).max_output_tokens == 100
    with pytest.raises(RequestError) as refused:
        _chat({"max_tokens": 101}, limits)
    assert refused.value.param == "max_tokens"


async def test_closing_the_engine_mid_stream_ends_the_response_as_cancelled(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["<|channel|>final<|message|>" + "word " * 100]))
    runtime = Runtime(engine, encoding)
    session = Session(runtime, "responses", "resp_shutdown")
    session.submit(render_responses({"input": "hi"}, encoding, RenderOptions()), Sampling())
    stream = ResponsesStream(ResponseMeta(id="resp_shutdown", model="gpt-oss-20b"))
    deltas = 0
    async for event in session.events():
        deltas += sum(e.type == "response.output_text.delta" for e in stream.feed(event))
        if deltas == 3:
            await runtime.close()  # what the daemon does when its shutdown deadline passes
    (failed,) = stream.finish(session.usage(), session.engine_error, session.finish_reason == "cancelled")[-1:]
    await session.close()
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.error.code == "cancelled"  # type: ignore[comparison-overlap]
    assert engine.stats()["cancelled"] == 1 and runtime.metrics.in_flight == 0


class RaisingGeneration:
    """A test double for an engine with a bug: its generation raises after three tokens."""

    def __init__(self, inner: ScriptedGeneration) -> None:
        self._inner = inner
        self.request_id, self.prompt_tokens, self.cached_tokens = inner.request_id, inner.prompt_tokens, 0

        self._count = 0

    async def ready(self) -> list[TokenEvent]:
        if self._count == 3:
            raise RuntimeError("index out of range in the sampler")
        self._count += 1
        return await self._inner.ready()

    async def cancel(self) -> None:
        await self._inner.cancel()


class RaisingEngine(ScriptedEngine):
    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> Any:
        return RaisingGeneration(super().submit(prompt, params, request_id))


async def test_an_engine_that_raises_still_ends_the_stream_with_a_failed_response(encoding: HarmonyEncoding) -> None:
    app = create_app(Runtime(RaisingEngine(encoding), encoding))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "stream": True})
    last = reply.text.strip().splitlines()[-1]
    assert '"type":"response.failed"' in last and "engine_error" in last and "index out of range" in last


def test_merge_deltas_joins_consecutive_deltas_of_one_message_only() -> None:
    events: list[Event] = [TextDelta("reasoning", "analysis", "a"), TextDelta("reasoning", "analysis", "b"),
                           TextDelta("final", "final", "c"), ToolArgumentsDelta("functions.f", "{"),
                           ToolArgumentsDelta("functions.f", "}"), Stop("call")]
    assert merge_deltas(events) == [TextDelta("reasoning", "analysis", "ab"), TextDelta("final", "final", "c"),
                                    ToolArgumentsDelta("functions.f", "{}"), Stop("call")]


class BurstGeneration(ScriptedGeneration):
    """Every token delivered before the consumer looks, as from an engine far ahead of it."""

    async def ready(self) -> list[TokenEvent]:
        events = []
        for token in self._tokens:
            events.append(TokenEvent(token, "stop" if token in self._params.stop_token_ids else None))
            if events[-1].finish_reason is not None:
                break
        return events


class BurstEngine(ScriptedEngine):
    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ScriptedGeneration:
        g = super().submit(prompt, params, request_id)
        return BurstGeneration(request_id, g.prompt_tokens, g._tokens, params, self.info.context_length, 0.0,
                               self._counters)


async def test_tokens_ready_together_stream_as_one_write_with_merged_deltas(encoding: HarmonyEncoding) -> None:
    app = create_app(Runtime(BurstEngine(encoding), encoding))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "stream": True})
    events = [json.loads(line.removeprefix("data: ")) for line in reply.text.splitlines() if line.startswith("data: ")]
    for event in events:
        STRICT.validate_python(event)  # still the SDK's own events
    deltas = [e for e in events if e["type"].endswith("_text.delta")]
    done = [e for e in events if e["type"].endswith("_text.done")]
    assert [d["delta"] for d in deltas] == [d["text"] for d in done]  # one delta per message
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["output_tokens"] > len(deltas)
