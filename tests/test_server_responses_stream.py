"""Decoder events -> Responses stream events, checked with hand-made event lists."""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

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
from codexpc.server.response_object import ResponseMeta
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.usage import Usage

STRICT = TypeAdapter(ResponseStreamEvent)
USAGE = Usage(prompt_tokens=100, cached_tokens=40, output_tokens=12, reasoning_tokens=5)


def reasoning(*parts: str) -> list[Event]:
    return [MessageStarted("reasoning", "analysis", None, None),
            *(TextDelta("reasoning", "analysis", p) for p in parts),
            MessageDone("reasoning", "analysis", None, "".join(parts))]


def message(kind: Any, channel: str, *parts: str) -> list[Event]:
    return [MessageStarted(kind, channel, None, None), *(TextDelta(kind, channel, p) for p in parts),
            MessageDone(kind, channel, None, "".join(parts))]


def call(recipient: str, *parts: str, error: ToolCallError | None = None) -> list[Event]:
    namespace, _, name = recipient.partition(".")
    args = "".join(parts)
    return [MessageStarted("tool_call", "commentary", recipient, "<|constrain|>json"),
            *(ToolArgumentsDelta(recipient, p) for p in parts),
            ToolArgumentsDone(recipient, namespace, name, args, error),
            MessageDone("tool_call", "commentary", recipient, args)]


def play(events: list[Event], engine_error: str | None = None,
         cancelled: bool = False) -> tuple[list[dict[str, Any]], ResponsesStream]:
    """Every stream event as the client receives it (SSE data, parsed)."""
    stream = ResponsesStream(ResponseMeta(id="resp_test", model="gpt-oss-20b"))
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    out += stream.finish(USAGE, engine_error, cancelled)
    frames = [sse.event(e, e.type).decode() for e in out]
    parsed = []
    for frame in frames:
        name_line, data_line, *_ = frame.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        parsed.append(data)
    return parsed, stream


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_reasoning_then_final_answer_is_a_completed_response() -> None:
    events, stream = play(reasoning("Think", "ing.") + message("final", "final", "Hel", "lo") + [Stop("return")])
    assert types(events) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta", "response.reasoning_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events[:-1]:  # the SDK's own schema accepts every event as it is
        STRICT.validate_python(event)
    done = events[-1]["response"]
    assert done["id"] == "resp_test" and done["status"] == "completed"
    assert [item["type"] for item in done["output"]] == ["reasoning", "message"]
    assert done["output"][0]["content"] == [{"type": "reasoning_text", "text": "Thinking."}]
    assert "encrypted_content" not in done["output"][0]  # a string or absent, as published
    assert done["output"][1]["content"][0]["text"] == "Hello"
    assert done["usage"]["input_tokens_details"]["cached_tokens"] == 40
    assert done["usage"]["output_tokens_details"]["reasoning_tokens"] == 5
    assert done["usage"]["total_tokens"] == 112
    assert stream.final is not None and stream.final.status == "completed"


def test_delta_events_are_the_bytes_the_sdk_models_write() -> None:
    stream = ResponsesStream(ResponseMeta(id="resp_test", model="gpt-oss-20b"))
    stream.start()
    text = 'a "q" é\n\x01 日本 \\ </script>'
    out = [e for kind, channel in (("reasoning", "analysis"), ("preamble", "commentary"), ("final", "final"))
           for e in stream.feed(TextDelta(kind, channel, text))]
    out += stream.feed(ToolArgumentsDelta("functions.exec_command", text))
    deltas = [e for e in out if e.type.endswith(".delta")]
    assert [type(e) for e in deltas] == [sse.Delta] * 4
    for delta in deltas:
        fields = json.loads(delta.json())
        model = STRICT.validate_python(fields)  # the SDK's own type, built from the same fields
        assert sse.event(delta, delta.type) == sse.event(model, model.type)
        assert fields["delta"] == text


def test_item_ids_agree_and_deltas_add_up_to_the_final_text() -> None:
    events, _ = play(reasoning("a", "b", "c") + message("final", "final", "x", "yz") + [Stop("return")])
    for index in (0, 1):
        mine = [e for e in events if e.get("output_index") == index]
        ids = {e["item"]["id"] if "item" in e else e["item_id"] for e in mine}
        assert len(ids) == 1
        deltas = "".join(e["delta"] for e in mine if e["type"].endswith(".delta"))
        (done,) = [e for e in mine if e["type"].endswith("_text.done")]
        assert deltas == done["text"]


def test_preamble_is_an_assistant_message_before_the_tool_call() -> None:
    events, _ = play(message("preamble", "commentary", "Running ls.") + call("functions.exec_command", '{"cmd":', ' "ls"}')
                     + [Stop("call")])
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(i["type"], i.get("phase")) for i in added] == [("message", "commentary"), ("function_call", None)]
    (args_done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert args_done["arguments"] == '{"cmd": "ls"}'
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == args_done["arguments"]
    item = [e for e in events if e["type"] == "response.output_item.done"][-1]["item"]
    assert item["name"] == "exec_command" and item["arguments"] == '{"cmd": "ls"}'
    assert item["call_id"].startswith("call_") and item["id"] == args_done["item_id"]
    assert events[-1]["type"] == "response.completed"


def test_namespace_tool_calls_carry_their_namespace() -> None:
    events, _ = play(call("multi_agent_v1.spawn_agent", "{}") + [Stop("call")])
    item = [e for e in events if e["type"] == "response.output_item.done"][-1]["item"]
    assert (item["namespace"], item["name"]) == ("multi_agent_v1", "spawn_agent")


def test_invalid_tool_arguments_fail_the_response_with_a_structured_error() -> None:
    error = ToolCallError("functions.exec_command", "$", "'cmd' is a required property", "schema")
    events, _ = play(reasoning("go") + call("functions.exec_command", '{"x": 1}', error=error) + [Stop("call")])
    assert "response.function_call_arguments.done" not in types(events)
    assert all(e["item"]["type"] != "function_call" for e in events if e["type"] == "response.output_item.done")
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"]["code"] == "invalid_tool_call"
    assert failed["response"]["error"]["tool"] == "functions.exec_command"
    assert failed["response"]["error"]["path"] == "$"
    assert "'cmd' is a required property" in failed["response"]["error"]["message"]
    assert [i["type"] for i in failed["response"]["output"]] == ["reasoning"]


def test_length_is_incomplete_and_closes_the_open_item() -> None:
    events, _ = play([MessageStarted("final", "final", None, None), TextDelta("final", "final", "partial"),
                      Stop("length")])
    assert types(events)[-4:] == ["response.output_text.done", "response.content_part.done",
                                  "response.output_item.done", "response.incomplete"]
    assert events[-2]["item"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_context_window_is_a_failure_codex_understands() -> None:
    events, _ = play(reasoning("a") + [Stop("context")])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "context_length_exceeded"


def test_broken_harmony_and_engine_failures_are_failed_responses() -> None:
    events, _ = play([DecodeError("unexpected token", 3), Stop("error")])
    assert events[-1]["response"]["error"]["code"] == "invalid_model_output"
    events, _ = play([], engine_error="CUDA out of memory")
    error = events[-1]["response"]["error"]
    assert error["code"] == "engine_out_of_memory" and error["message"].endswith("CUDA out of memory")


def test_text_without_a_message_start_still_opens_an_item() -> None:
    events, _ = play([TextDelta("final", "final", "hi"), Stop("return")])
    assert types(events)[2:5] == ["response.output_item.added", "response.content_part.added",
                                  "response.output_text.delta"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "hi"


def test_a_generation_the_server_cancelled_fails_as_cancelled() -> None:
    events, _ = play(reasoning("a") + [DecodeError("the generation was cancelled", -1), Stop("error")], cancelled=True)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "cancelled"
