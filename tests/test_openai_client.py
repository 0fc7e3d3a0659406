"""The official openai client against a real uvicorn server on 127.0.0.1 serving
create_app(Runtime(ScriptedEngine)): the whole path (render, decoder, events, HTTP, SSE) for real."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import SCRIPTED_COMMAND, ScriptedEngine, fixed_scripts
from codexpc.server.app import create_app
from codexpc.server.runtime import Runtime

EXEC_TOOL = {"type": "function", "name": "exec_command", "description": "Run a command.",
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
                            "additionalProperties": False}}
CHAT_EXEC_TOOL = {"type": "function", "function": {k: v for k, v in EXEC_TOOL.items() if k != "type"}}


@contextlib.contextmanager
def serving(runtime: Runtime) -> Iterator[str]:
    """A real uvicorn server in a thread on a free loopback port; yields its /v1 base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture()
def engine(encoding: HarmonyEncoding) -> ScriptedEngine:
    return ScriptedEngine(encoding)


@pytest.fixture()
def base_url(engine: ScriptedEngine, encoding: HarmonyEncoding) -> Iterator[str]:
    with serving(Runtime(engine, encoding)) as url:
        yield url


@pytest.fixture()
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)


def test_streaming_response(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-oss-20b", input="What is 2+2?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.reasoning_text.delta" in kinds and "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == final.output_text == "Scripted answer to: What is 2+2?"
    assert final.id == events[0].response.id and final.status == "completed"
    assert final.usage is not None and final.usage.input_tokens > 0
    assert 0 < final.usage.output_tokens_details.reasoning_tokens < final.usage.output_tokens


def test_non_streaming_response(client: openai.OpenAI, engine: ScriptedEngine, encoding: HarmonyEncoding) -> None:
    response = client.responses.create(model="gpt-oss:20b", input="Hello", max_output_tokens=500,
                                       temperature=0.5, top_p=0.9, reasoning={"effort": "low"})
    assert response.status == "completed" and response.output_text == "Scripted answer to: Hello"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.temperature == 0.5 and response.max_output_tokens == 500
    assert "Reasoning: low" in encoding.decode_utf8(engine.prompts[-1])


def test_tool_call_then_a_second_turn_with_reasoning_passed_back(client: openai.OpenAI, engine: ScriptedEngine,
                                                                  encoding: HarmonyEncoding) -> None:
    history: list[Any] = [{"type": "message", "role": "user", "content": "list files"}]
    first = client.responses.create(model="gpt-oss-20b", input=history, tools=[EXEC_TOOL])  # type: ignore[arg-type]
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": SCRIPTED_COMMAND}
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "codexpc-scripted\n"})
    second = client.responses.create(model="gpt-oss-20b", input=history, tools=[EXEC_TOOL])  # type: ignore[arg-type]
    assert second.output_text == "The command printed: codexpc-scripted"
    prompt = encoding.decode_utf8(engine.prompts[-1])
    assert reasoning.content and reasoning.content[0].text in prompt  # the chain of thought went back in
    assert "codexpc-scripted" in prompt and "to=functions.exec_command" in prompt


def test_codex_first_turn_streams_a_valid_exec_command_call(base_url: str, codex_turn1_request: dict[str, Any]) -> None:
    with httpx.stream("POST", f"{base_url}/responses", json=codex_turn1_request, timeout=30) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "function_call"]
    assert json.loads(done[1]["arguments"]) == {"cmd": SCRIPTED_COMMAND}
    assert events[-1]["type"] == "response.completed"
    assert "cached_tokens" in events[-1]["response"]["usage"]["input_tokens_details"]


def test_chat_completions_streaming_with_tools(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "list files"}], tools=[CHAT_EXEC_TOOL],  # type: ignore[list-item]
        stream=True, stream_options={"include_usage": True}))
    calls = [c for chunk in chunks for choice in chunk.choices for c in (choice.delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "exec_command" and calls[0].id
    arguments = "".join(c.function.arguments or "" for c in calls if c.function)
    assert json.loads(arguments) == {"cmd": SCRIPTED_COMMAND}
    finish = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_chat_completions_non_streaming(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-oss-20b", messages=[{"role": "user", "content": "Hi"}])
    message = completion.choices[0].message
    assert message.content == "Scripted answer to: Hi" and completion.choices[0].finish_reason == "stop"
    assert getattr(message, "reasoning_content", "").startswith("The user asked")


def test_models_health_and_metrics(client: openai.OpenAI, base_url: str) -> None:
    client.responses.create(model="gpt-oss-20b", input="warm up")
    ids = [m.id for m in client.models.list()]  # the model, then each alias as its own card
    assert ids[0] == "gpt-oss-20b" and "gpt-oss:20b" in ids
    root = base_url.removesuffix("/v1")
    health = httpx.get(f"{root}/health").json()
    assert health["model"] == "gpt-oss-20b" and health["engine"]["state"] == "ready" and health["uptime_s"] >= 0
    metrics = httpx.get(f"{root}/metrics").text
    assert 'codexpc_requests_total{route="responses",outcome="completed"} 1' in metrics
    assert "codexpc_time_to_first_token_seconds_count 1" in metrics
    assert "codexpc_engine_prefix_cache_hits 0" in metrics


def test_an_invalid_tool_call_fails_the_response_and_the_log_names_the_tool(
        encoding: HarmonyEncoding, caplog: pytest.LogCaptureFixture) -> None:
    bad = ("<|channel|>commentary to=functions.exec_command <|constrain|>json<|message|>"
           '{"command": "ls"}<|call|>')
    caplog.set_level(logging.INFO, logger="codexpc")
    runtime = Runtime(ScriptedEngine(encoding, script=fixed_scripts([bad])), encoding)
    with serving(runtime) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        events = list(client.responses.create(model="gpt-oss-20b", input="x", tools=[EXEC_TOOL], stream=True))  # type: ignore[list-item]
    failed = events[-1]
    assert failed.type == "response.failed"
    error = failed.response.error
    assert error is not None and error.code == "invalid_tool_call"  # type: ignore[comparison-overlap]
    extras = error.model_extra or {}  # the structured fields ride along as extras of the SDK's type
    assert extras["tool"] == "functions.exec_command" and extras["path"]
    assert not any(e.type == "response.output_item.done" for e in events)
    assert any("tool call refused tool=functions.exec_command" in r.getMessage() for r in caplog.records)


def test_a_client_that_disconnects_cancels_its_generation(encoding: HarmonyEncoding) -> None:
    long_answer = "<|channel|>final<|message|>" + "word " * 2000 + "<|return|>"
    engine = ScriptedEngine(encoding, script=fixed_scripts([long_answer]), delay_s=0.005)
    with serving(Runtime(engine, encoding)) as url:
        body = {"model": "gpt-oss-20b", "input": "talk", "stream": True}
        with httpx.stream("POST", f"{url}/responses", json=body, timeout=30) as reply:
            for line in reply.iter_lines():
                if "response.output_text.delta" in line:
                    break
        deadline = time.monotonic() + 5
        while engine.stats()["cancelled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats()["cancelled"] == 1 and engine.stats()["running"] == 0
        assert engine.stats()["finished"] == 0  # it never played to the end


def test_a_non_streaming_client_that_goes_away_cancels_too(encoding: HarmonyEncoding) -> None:
    long_answer = "<|channel|>final<|message|>" + "word " * 2000 + "<|return|>"
    engine = ScriptedEngine(encoding, script=fixed_scripts([long_answer]), delay_s=0.005)
    with serving(Runtime(engine, encoding)) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/responses", json={"model": "gpt-oss-20b", "input": "talk"}, timeout=0.5)
        deadline = time.monotonic() + 5
        while engine.stats()["cancelled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats()["cancelled"] == 1 and engine.stats()["finished"] == 0
