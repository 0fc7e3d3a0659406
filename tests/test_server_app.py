"""The routes, in process (httpx over ASGI): error bodies for bad input, models, health,
metrics, the admin route's transport check, and failures during generation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.request import RequestLimits
from codexpc.server.runtime import ModelEntry, Runtime


@pytest.fixture()
def runtime(encoding: HarmonyEncoding) -> Runtime:
    return Runtime(ScriptedEngine(encoding), encoding)


@pytest.fixture()
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def assert_error(reply: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code and error["param"] == param
    return error


async def test_invalid_json_and_non_objects_are_400(http: httpx.AsyncClient) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        reply = await http.post("/v1/responses", content=raw, headers={"content-type": "application/json"})
        error = assert_error(reply, 400, "invalid_json")
        assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi", "stream": "yes"}, "stream"),
    ({"input": "hi", "model": 7}, "model"),
    ({"input": "hi", "temperature": "hot"}, "temperature"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "top_p": 0}, "top_p"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": True}, "max_output_tokens"),
    ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"input": "hi", "metadata": {"a": 1}}, "metadata"),
    ({"input": "hi", "parallel_tool_calls": "x"}, "parallel_tool_calls"),
])
async def test_wrong_types_and_ranges_are_400_naming_the_param(http: httpx.AsyncClient, body: dict[str, Any],
                                                               param: str) -> None:
    error = assert_error(await http.post("/v1/responses", json=body), 400, "invalid_request_error", param)
    assert param.split(".")[0] in error["message"]


async def test_chat_options_of_the_wrong_type_are_400(http: httpx.AsyncClient, runtime: Runtime) -> None:
    messages = [{"role": "user", "content": "hi"}]
    for options in ("x", {"include_usage": "yes"}):
        reply = await http.post("/v1/chat/completions", json={"messages": messages, "stream": True,
                                                              "stream_options": options})
        assert_error(reply, 400, "invalid_request_error", "stream_options" if options == "x" else "stream_options.include_usage")
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


async def test_stored_state_is_refused_rather_than_ignored(http: httpx.AsyncClient) -> None:
    for key, value in (("previous_response_id", "resp_1"), ("conversation", "conv_1"), ("background", True)):
        assert_error(await http.post("/v1/responses", json={"input": "hi", key: value}), 400,
                     "unsupported_parameter", key)


async def test_bad_input_items_are_4xx_from_the_renderer(http: httpx.AsyncClient) -> None:
    for body in ({"input": 5}, {"input": [{"type": "message", "role": "user", "content": 5}]},
                 {"messages": "hi"}):
        path = "/v1/chat/completions" if "messages" in body else "/v1/responses"
        reply = await http.post(path, json=body)
        assert 400 <= reply.status_code < 500 and reply.json()["error"]["message"]


async def test_unknown_model_route_and_method_are_openai_error_bodies(http: httpx.AsyncClient) -> None:
    error = assert_error(await http.post("/v1/responses", json={"model": "gpt-5", "input": "hi"}), 404,
                         "model_not_found", "model")
    assert "gpt-oss-20b" in error["message"]
    assert_error(await http.get("/v1/nothing"), 404, "not_found")
    assert_error(await http.get("/v1/responses"), 405, "method_not_allowed")


async def test_a_prompt_over_the_context_window_is_400_before_any_stream(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding, context_length=64), encoding)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi " * 100, "stream": True})
    assert_error(reply, 400, "context_length_exceeded", "input")
    assert runtime.in_flight == 0 and runtime.metrics.in_flight == 0


async def test_models_lists_names_aliases_and_context_windows(encoding: HarmonyEncoding) -> None:
    models = [ModelEntry("gpt-oss-20b", 131072, ("gpt-oss:20b",)), ModelEntry("gpt-oss-120b", 131072)]
    runtime = Runtime(ScriptedEngine(encoding), encoding, models=models)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://x") as http:
        listing = (await http.get("/v1/models")).json()
        one = (await http.get("/v1/models/gpt-oss:20b")).json()
    # Every name a request may use is a card of its own (--oss looks its names up); aliases name their root.
    cards = {m["id"]: (m.get("root", m["id"]), m["context_window"]) for m in listing["data"]}
    assert cards["gpt-oss-20b"] == cards["gpt-oss:20b"] == ("gpt-oss-20b", 131072)
    assert cards["gpt-oss-120b"] == ("gpt-oss-120b", 131072)
    assert [m["id"] for m in listing["data"]][0] == "gpt-oss-20b"
    assert one["id"] == "gpt-oss-20b" and one["aliases"] == ["gpt-oss:20b"]


async def test_health_reports_model_checkpoint_device_memory_state_uptime(http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health["model"] == "gpt-oss-20b" and health["device"] == "cpu"
    assert health["checkpoint"].startswith("scripted") and health["engine"]["state"] == "ready"
    assert health["memory"]["process_max_rss_bytes"] > 0 and health["uptime_s"] >= 0


async def test_metrics_count_requests_and_tokens(http: httpx.AsyncClient, runtime: Runtime) -> None:
    await http.post("/v1/responses", json={"input": "hi"})
    await http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 3})
    text = (await http.get("/metrics")).text
    assert 'codexpc_requests_total{route="responses",outcome="completed"} 1' in text
    assert 'codexpc_requests_total{route="responses",outcome="incomplete"} 1' in text
    assert f"codexpc_completion_tokens_total {runtime.metrics.completion_tokens}" in text
    assert runtime.metrics.completion_tokens > 3 and runtime.metrics.prompt_tokens > 0


async def test_max_output_tokens_makes_an_incomplete_response(http: httpx.AsyncClient) -> None:
    body = (await http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 5})).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 5


async def test_an_engine_failure_is_a_failed_response(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding, fail_after=4), encoding)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://x") as http:
        reply = await http.post("/v1/responses", json={"input": "hi", "stream": True})
        chat = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "engine_error"
    assert_error(chat, 500, "engine_error")


async def test_admin_reload_only_on_the_unix_socket(runtime: Runtime) -> None:
    calls: list[str] = []

    async def reload_hook() -> dict[str, Any]:
        calls.append("reload")
        return {"model": "gpt-oss-20b"}

    app = create_app(runtime, reload_hook=reload_hook)

    async def over_unix(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "codexpc_transport": "unix"}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as tcp:
        assert_error(await tcp.post("/admin/reload"), 403, "forbidden")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=over_unix), base_url="http://x") as unix:
        reply = await unix.post("/admin/reload")
    assert reply.json() == {"reloaded": True, "model": "gpt-oss-20b"} and calls == ["reload"]


async def test_request_limits_are_4xx_naming_the_field(encoding: HarmonyEncoding) -> None:
    limits = RequestLimits(max_output_tokens=100, max_input_items=1, max_tools=0)
    runtime = Runtime(ScriptedEngine(encoding), encoding, limits=limits)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://x") as http:
        assert_error(await http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 101}), 400,
                     "invalid_request_error", "max_output_tokens")
        assert_error(await http.post("/v1/responses", json={"input": ["a", "b"]}), 400, "invalid_request_error",
                     "input")
        assert_error(await http.post("/v1/chat/completions", json={"messages": [], "tools": [{}]}), 400,
                     "invalid_request_error", "tools")
    assert runtime.in_flight == 0
