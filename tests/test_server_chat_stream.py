"""Decoder events -> Chat Completions chunks, checked with hand-made event lists."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from codexpc.harmony.events import (
    DecodeError,
    Event,
    MessageDone,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDelta,
    ToolArgumentsDone,
    ToolCallError,
)
from codexpc.server import sse
from codexpc.server.chat_stream import ChatStream
from codexpc.server.usage import Usage

USAGE = Usage(prompt_tokens=10, cached_tokens=4, output_tokens=6, reasoning_tokens=2)
REASONING: list[Event] = [MessageStarted("reasoning", "analysis", None, None), TextDelta("reasoning", "analysis", "hm"),
                          MessageDone("reasoning", "analysis", None, "hm")]


def call(arguments: str, error: ToolCallError | None = None) -> list[Event]:
    recipient = "functions.exec_command"
    return [MessageStarted("tool_call", "commentary", recipient, "<|constrain|>json"),
            ToolArgumentsDelta(recipient, arguments[:4]), ToolArgumentsDelta(recipient, arguments[4:]),
            ToolArgumentsDone(recipient, "functions", "exec_command", arguments, error),
            MessageDone("tool_call", "commentary", recipient, arguments)]


def play(events: list[Event]) -> tuple[ChatStream, list[dict]]:
    chat = ChatStream(id="chatcmpl_test", model="gpt-oss-20b")
    chunks = chat.start()
    for event in events:
        chunks += chat.feed(event)
    chunks += chat.close(USAGE, None, include_usage=True)
    # As the client reads them: the SSE data of each chunk, which the SDK's own type accepts.
    data = [sse.event(c).decode().removeprefix("data: ") for c in chunks]
    for text in data:
        ChatCompletionChunk.model_validate_json(text)
    return chat, [json.loads(text) for text in data]


def test_per_token_chunks_are_the_bytes_the_sdk_model_writes() -> None:
    chat = ChatStream(id="chatcmpl_test", model='gpt-oss "20b"')
    reasoning, text = chat.feed(TextDelta("reasoning", "analysis", 'a "q" é\n\x01'))[0], chat.feed(TextDelta("final", "final", "日本"))[0]
    chat.feed(MessageStarted("tool_call", "commentary", "functions.f", None))
    arguments = chat.feed(ToolArgumentsDelta("functions.f", '{"x":'))[0]

    def model(delta: ChoiceDelta) -> bytes:
        choice = Choice(index=0, delta=delta, finish_reason=None)
        return sse.event(ChatCompletionChunk(id=chat.id, object="chat.completion.chunk", created=chat.created,
                                             model=chat.model, choices=[choice]))

    assert sse.event(reasoning) == model(ChoiceDelta(reasoning_content='a "q" é\n\x01'))  # type: ignore[call-arg]
    assert sse.event(text) == model(ChoiceDelta(content="日本"))
    call = ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments='{"x":'))
    assert sse.event(arguments) == model(ChoiceDelta(tool_calls=[call]))


def test_reasoning_and_answer_stream_as_reasoning_content_and_content() -> None:
    chat, chunks = play(REASONING + [MessageStarted("final", "final", None, None), TextDelta("final", "final", "4"),
                                     MessageDone("final", "final", None, "4"), Stop("return")])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert {"reasoning_content": "hm"} in deltas and {"content": "4"} in deltas
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    message = chat.completion(USAGE).choices[0].message
    assert message.content == "4" and getattr(message, "reasoning_content") == "hm"  # noqa: B009


def test_tool_calls_stream_with_an_id_then_argument_deltas() -> None:
    chat, chunks = play(REASONING + call('{"cmd": "ls"}') + [Stop("call")])
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"] == {"name": "exec_command", "arguments": ""}
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"cmd": "ls"}'
    assert {tc["index"] for tc in calls} == {0}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    completion = chat.completion(USAGE)
    assert completion.choices[0].finish_reason == "tool_calls"
    tool_calls = completion.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.arguments == '{"cmd": "ls"}'  # type: ignore[union-attr]


def test_an_invalid_call_or_broken_harmony_is_a_failure_with_no_finish_chunk() -> None:
    error = ToolCallError("functions.exec_command", "$", "'cmd' is a required property", "schema")
    chat, chunks = play(call('{"x": 1}', error) + [Stop("call")])
    assert chat.failure is not None and chat.failure.code == "invalid_tool_call"
    assert all(c["choices"][0].get("finish_reason") is None for c in chunks if c["choices"])
    chat, _ = play([DecodeError("bad token", 0), Stop("error")])
    assert chat.failure is not None and chat.failure.code == "invalid_model_output"


def test_length_is_finish_reason_length() -> None:
    _, chunks = play([MessageStarted("final", "final", None, None), TextDelta("final", "final", "a"), Stop("length")])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
