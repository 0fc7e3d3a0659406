"""Hostile and malformed request bodies: every one is a 4xx with an OpenAI error body, never a 500.

The cases are the ones a probe of the routes found (lone surrogates and deep nesting were 500s,
a seed beyond 64 bits overflowed torch's generator) and the shapes a client gets wrong.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.body import MAX_DEPTH
from codexpc.server.request import RequestLimits
from codexpc.server.runtime import Runtime

RESPONSES, CHAT = "/v1/responses", "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def runtime(encoding: HarmonyEncoding) -> Runtime:
    limits = RequestLimits(max_output_tokens=1000, max_input_items=8, max_tools=4, max_tool_schema_bytes=2000)
    return Runtime(ScriptedEngine(encoding, context_length=4096), encoding, limits=limits)


@pytest.fixture()
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def post_raw(http: httpx.AsyncClient, path: str, raw: bytes) -> httpx.Response:
    return await http.post(path, content=raw, headers={"content-type": "application/json"})


def assert_4xx(reply: httpx.Response, param: str | None = None) -> dict[str, Any]:
    assert 400 <= reply.status_code < 500, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize(("path", "raw", "param"), [
    (RESPONSES, rb'{"input": "\ud800"}', "input"),
    (RESPONSES, rb'{"instructions": "a\udc00b", "input": "hi"}', "instructions"),
    (RESPONSES, rb'{"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", '
                rb'"text": "\udfff"}]}]}', "input[0].content[0].text"),
    (CHAT, rb'{"messages": [{"role": "user", "content": "\ud800"}]}', "messages[0].content"),
    (RESPONSES, rb'{"input": "hi", "metadata": {"\ud800": "x"}}', "metadata"),
])
async def test_lone_surrogates_are_400_naming_the_field(http: httpx.AsyncClient, path: str, raw: bytes,
                                                        param: str) -> None:
    error = assert_4xx(await post_raw(http, path, raw), param)
    assert "surrogate" in error["message"]


async def test_invalid_utf8_and_deep_nesting_are_400(http: httpx.AsyncClient, runtime: Runtime) -> None:
    assert assert_4xx(await post_raw(http, RESPONSES, b'{"input": "\xc3\x28"}'))["code"] == "invalid_json"
    # Deep enough for json's own recursion limit, and just past ours.
    assert assert_4xx(await post_raw(http, RESPONSES, b"[" * 100_000 + b"]" * 100_000))["code"] == "invalid_json"
    nested: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        nested = {"a": nested}
    error = assert_4xx(await http.post(RESPONSES, json={"input": "hi", "metadata": nested}))
    assert "deeper" in error["message"] and error["param"].startswith("metadata.a.a")
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi", "temperature": -0.1}, "temperature"),
    ({"input": "hi", "temperature": 2.5}, "temperature"),
    ({"input": "hi", "top_p": 1.5}, "top_p"),
    ({"input": "hi", "top_p": -1}, "top_p"),
    ({"input": "hi", "seed": 2**64}, "seed"),
    ({"input": "hi", "seed": -(2**63) - 1}, "seed"),
    ({"input": "hi", "seed": "1"}, "seed"),
    ({"input": "hi", "max_output_tokens": 10**30}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": 1001}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": -1}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": 1.5}, "max_output_tokens"),
    ({"input": ["a"] * 9}, "input"),
    ({"input": "hi", "tools": [{"type": "function", "name": f"f{i}"} for i in range(5)]}, "tools"),
    ({"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"description": "x" * 3000}}]},
     "tools[0]"),
    ({"input": "hi " * 5000}, "input"),  # over the 4096-token context window
])
async def test_every_bound_is_400_naming_the_field(http: httpx.AsyncClient, body: dict[str, Any],
                                                   param: str) -> None:
    assert_4xx(await http.post(RESPONSES, json=body), param)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": HI, "temperature": 9}, "temperature"),
    ({"messages": HI, "max_tokens": "x"}, "max_tokens"),
    ({"messages": HI, "max_completion_tokens": 5000}, "max_completion_tokens"),
    ({"messages": HI, "seed": 2**70}, "seed"),
])
async def test_chat_bounds_are_400_naming_the_field(http: httpx.AsyncClient, body: dict[str, Any],
                                                    param: str) -> None:
    assert_4xx(await http.post(CHAT, json=body), param)


# Wrong types, as a probe of the routes tried them: each must be a 4xx. (An unknown item *type*
# is dropped with a log line instead: tests/test_render_codex_items.py.)
WRONG_SHAPES: list[tuple[str, Any]] = [
    (RESPONSES, {"input": [{"type": 5}]}),
    (RESPONSES, {"input": [5]}),
    (RESPONSES, {"input": [None]}),
    (RESPONSES, {"input": [{"role": "wizard", "content": "x"}]}),
    (RESPONSES, {"input": [{"type": "message", "role": "user", "content": [{"type": "bogus"}]}]}),
    (RESPONSES, {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": 5}]}]}),
    (RESPONSES, {"input": [{"type": "message", "role": "user", "content": [{"type": "input_image",
                                                                            "image_url": "x"}]}]}),
    (RESPONSES, {"input": [{"type": "function_call", "name": 5, "arguments": 7, "call_id": None}]}),
    (RESPONSES, {"input": [{"type": "function_call_output", "call_id": 5, "output": {"a": 1}}]}),
    (RESPONSES, {"input": [{"type": "reasoning", "content": [5], "summary": [None]}]}),
    (RESPONSES, {"input": [{"type": "reasoning", "content": False}]}),  # found by schemathesis
    (RESPONSES, {"input": "hi", "instructions": ["a"]}),
    (RESPONSES, {"input": "hi", "tools": "x"}),
    (RESPONSES, {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "bogus"}}]}),
    (RESPONSES, {"input": "hi", "reasoning": {"effort": 5}}),
    (RESPONSES, {"input": {"a": 1}}),
    (CHAT, {"messages": None}),
    (CHAT, {"messages": [5]}),
    (CHAT, {"messages": [{"role": "bogus", "content": "x"}]}),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "bogus"}]}]}),
    (CHAT, {"messages": [{"role": "assistant", "tool_calls": [{"function": 5}]}]}),
    (CHAT, {"messages": [{"role": "tool", "tool_call_id": 5, "content": 5}]}),
    (CHAT, {"messages": HI, "tools": [{"type": "function", "function": 5}]}),
]


@pytest.mark.parametrize("stream", [False, True])
async def test_wrong_types_and_unknown_items_are_4xx(http: httpx.AsyncClient, runtime: Runtime,
                                                     stream: bool) -> None:
    for path, body in WRONG_SHAPES:
        reply = await http.post(path, json={**body, "stream": stream} if "stream" not in body else body)
        assert_4xx(reply)
        assert json.loads(reply.text)["error"]["type"] == "invalid_request_error", (path, body, reply.text)
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0
