"""Chat Completions failures: each a clean OpenAI error object with the status a client can act
on. The model's output breaking Harmony is a 502 (the model, upstream of the daemon, answered
badly; a retry samples again), never a 500: the daemon is fine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine, fixed_scripts
from codexpc.harmony.events import DecodeError, ToolCallError
from codexpc.server.app import create_app
from codexpc.server.chat_stream import ChatStream
from codexpc.server.errors import engine_failure, failure_response, failure_status, tool_failure
from codexpc.server.runtime import Runtime
from codexpc.server.usage import Usage

BROKEN = "<|channel|>final<|message|>half an answer<|start|>"  # a new message inside one: not Harmony
USAGE = Usage(10, 0, 3, 0)


def test_broken_harmony_is_a_502_model_error() -> None:
    chat = ChatStream(id="chatcmpl_test", model="gpt-oss-20b")
    chat.feed(DecodeError("unexpected <|start|>", 4))
    assert chat.close(USAGE, None, include_usage=False) == []
    assert chat.failure is not None and failure_status(chat.failure) == 502
    error = chat.error()["error"]
    assert error["type"] == "model_error" and error["code"] == "invalid_model_output" and error["param"] is None
    assert "broke Harmony" in error["message"]


def test_each_failure_has_the_status_a_client_can_act_on() -> None:
    oom = failure_response(engine_failure("torch.OutOfMemoryError: CUDA out of memory"))
    assert oom.status_code == 503 and oom.headers["retry-after"] == "2"
    assert failure_response(engine_failure("a bug")).status_code == 500  # the daemon's own failure
    refused = tool_failure(ToolCallError("functions.exec_command", "$.cmd", "not a string", "schema"))
    assert failure_status(refused) == 502


@pytest.fixture()
async def http(encoding: HarmonyEncoding) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(ScriptedEngine(encoding, script=fixed_scripts([BROKEN])), encoding)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://127.0.0.1") as client:
        yield client


async def test_a_non_streaming_chat_whose_output_breaks_harmony_is_a_502(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 502, reply.text
    assert reply.json()["error"]["type"] == "model_error"
    assert reply.json()["error"]["code"] == "invalid_model_output"


async def test_a_streaming_chat_ends_with_the_same_error_object(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                          "stream": True})
    assert reply.status_code == 200
    assert '"type":"model_error"' in reply.text and reply.text.endswith("data: [DONE]\n\n")
