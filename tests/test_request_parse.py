"""The one request parse (server/request.py) and the one effort table (efforts.py), through the app.

Each of these failed on bba8fd2: efforts the renderer maps were refused by the route, a body
limit above 32 MiB was capped by a second constant, and the log's cached_tokens read 0 on the
paged engine because it was written before the engine knew.
"""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from openai_harmony import HarmonyEncoding

from codexpc.efforts import EFFORT_NAMES, EFFORTS, level_of
from codexpc.engine.factory import create_engine
from codexpc.engine.scripted import ScriptedEngine
from codexpc.errors import RequestError
from codexpc.server.app import create_app
from codexpc.server.openapi import openapi_document
from codexpc.server.request import RequestLimits, TextFormat, parse_chat, parse_responses
from codexpc.server.runtime import Runtime


def test_every_effort_codex_sends_has_a_gpt_oss_level() -> None:
    assert EFFORT_NAMES == ("none", "minimal", "low", "medium", "high", "xhigh", "max")
    assert {EFFORTS[name] for name in EFFORT_NAMES} == {"low", "medium", "high"}
    assert level_of("xhigh") == "high" and level_of("none") == "low"
    with pytest.raises(RequestError) as refused:
        level_of("ultra")
    assert refused.value.param == "reasoning.effort" and "xhigh" in str(refused.value)


@pytest.mark.parametrize("effort", EFFORT_NAMES)
async def test_each_effort_is_served_by_the_route_and_rendered(encoding: HarmonyEncoding, effort: str) -> None:
    engine = ScriptedEngine(encoding)
    app = create_app(Runtime(engine, encoding))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "reasoning": {"effort": effort}})
        chat = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                             "reasoning_effort": effort})
    assert reply.status_code == 200, reply.text
    assert chat.status_code == 200, chat.text
    assert reply.json()["reasoning"]["effort"] == effort  # echoed as asked
    prompt = encoding.decode_utf8(engine.prompts[-1])
    assert f"Reasoning: {EFFORTS[effort]}" in prompt


def test_the_openapi_description_lists_the_same_efforts() -> None:
    schema = openapi_document()["components"]["schemas"]
    text = json.dumps(schema)
    assert json.dumps(list(EFFORT_NAMES)) in text


def test_a_body_limit_above_32_mib_is_the_limit_applied() -> None:
    big = json.dumps({"input": "x" * (33 * 2**20)}).encode()
    parse_responses(big, RequestLimits(max_body_bytes=64 * 2**20))  # accepted: the config's limit
    with pytest.raises(RequestError) as refused:
        parse_responses(big, RequestLimits(max_body_bytes=32 * 2**20))
    assert refused.value.code == "request_too_large"


def test_text_format_and_response_format_parse_to_one_value() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    responses = parse_responses(json.dumps({"input": "hi", "text": {"format": {
        "type": "json_schema", "name": "out", "schema": schema, "strict": True}}}).encode(), RequestLimits())
    chat = parse_chat(json.dumps({"messages": [{"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}}).encode(),
        RequestLimits())
    assert responses.text_format == chat.text_format == TextFormat("json_schema", "out", schema, True)
    assert parse_responses(b'{"input": "hi"}', RequestLimits()).text_format == TextFormat()
    for bad, param in (({"text": {"format": {"type": "xml"}}}, "text.format.type"),
                       ({"text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
                       ({"stream": "yes"}, "stream"), ({"model": 3}, "model")):
        with pytest.raises(RequestError) as refused:
            parse_responses(json.dumps({"input": "hi", **bad}).encode(), RequestLimits())
        assert refused.value.param is not None and refused.value.param.startswith(param.rsplit(".", 1)[0])


async def test_the_logged_cached_tokens_are_the_paged_engines_prefix_hit(
    caplog: pytest.LogCaptureFixture, encoding: HarmonyEncoding, tiny_checkpoint: object
) -> None:
    engine = create_engine("paged", model="gpt-oss-20b", checkpoint=tiny_checkpoint, device="cpu")  # type: ignore[arg-type]
    app = create_app(Runtime(engine, encoding))
    caplog.set_level(logging.INFO, logger="codexpc.session")
    body = {"input": "the same long question " * 20, "max_output_tokens": 2, "temperature": 0}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as http:
            first = (await http.post("/v1/responses", json=body)).json()
            second = (await http.post("/v1/responses", json=body)).json()
    finally:
        await engine.close()
    logged = [int(m.group(1)) for r in caplog.records
              if (m := re.search(r"stream start .* cached_tokens=(\d+)$", r.getMessage()))]
    reported = [first["usage"]["input_tokens_details"]["cached_tokens"],
                second["usage"]["input_tokens_details"]["cached_tokens"]]
    assert logged == reported
    assert reported[1] > 0  # the second turn's prompt came from the prefix cache
