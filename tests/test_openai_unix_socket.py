"""The official openai client against a real daemon (scripted engine), over the Unix socket
through an httpx transport, and over loopback TCP: streaming, non-streaming, a tool call, and a
second turn that passes the reasoning and the tool's output back."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from test_daemon import DaemonProcess

SHELL_TOOL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command.",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
}


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    process = DaemonProcess().start()
    try:
        yield process
    finally:
        process.signal(signal.SIGTERM)
        process.wait_exit()
        process.close()


@pytest.fixture(params=["unix", "tcp"])
def client(request: pytest.FixtureRequest, daemon: DaemonProcess) -> Iterator[openai.OpenAI]:
    if request.param == "unix":
        http = httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket_path)))
        # The host part is unused on a Unix socket; the daemon only checks Host on TCP.
        made = openai.OpenAI(base_url="http://localhost/v1", api_key="unused", http_client=http, max_retries=0)
    else:
        made = openai.OpenAI(base_url=daemon.base_url, api_key="unused", max_retries=0)
    with made:
        yield made


def test_non_streaming(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-oss-20b", input="What is 2+2?")
    assert response.status == "completed" and response.model == "gpt-oss-20b"
    assert "Scripted answer to: What is 2+2?" in response.output_text
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.output_tokens_details.reasoning_tokens > 0


def test_streaming_deltas_add_up(client: openai.OpenAI) -> None:
    deltas: list[str] = []
    types: list[str] = []
    with client.responses.stream(model="gpt-oss:20b", input="Stream this") as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.reasoning_text.delta" in types
    assert "".join(deltas) == final.output_text


def test_tool_call_then_second_turn_with_reasoning_passed_back(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-oss-20b", input="List the files.", tools=[SHELL_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "exec_command"
    assert '"cmd"' in calls[0].arguments
    # Pass everything back as Codex does: the reasoning, the call, and the call's output.
    history: list[Any] = [{"role": "user", "content": "List the files."}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "a.txt b.txt"})
    with client.responses.stream(model="gpt-oss-20b", input=history, tools=[SHELL_TOOL]) as stream:
        second = stream.get_final_response()
    assert second.status == "completed"
    assert "a.txt b.txt" in second.output_text


def test_errors_come_back_as_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-oss-20b", input="x", temperature=9.0)


def test_chat_completions_streaming_and_not(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Say hi"}]
    completion = client.chat.completions.create(model="gpt-oss-20b", messages=messages)
    text = completion.choices[0].message.content or ""
    assert "Scripted answer to: Say hi" in text and completion.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model="gpt-oss-20b", messages=messages, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == text
