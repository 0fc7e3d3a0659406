"""The event decoder on realistic and malformed completions, written as Harmony text and encoded
with the real gpt-oss encoding."""

from __future__ import annotations

from typing import Any

import pytest
from openai_harmony import HarmonyEncoding, Role

from codexpc.harmony.decoder import MAX_HEADER_TOKENS, HarmonyDecoder, stop_token_ids
from codexpc.harmony.encoding import CALL, RETURN
from codexpc.harmony.events import (
    DecodeError,
    Event,
    MessageDone,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDelta,
    ToolArgumentsDone,
)
from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.harmony.tools import ToolRegistry, registry_from_responses

SHELL = {
    "type": "function",
    "name": "shell",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "array", "items": {"type": "string"}}},
        "required": ["cmd"],
    },
}
AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "", "tools": [dict(SHELL, name="spawn_agent")]}
CALL_HEADER = "<|start|>assistant<|channel|>commentary to=functions.shell <|constrain|>json<|message|>"


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return registry_from_responses([SHELL, AGENTS])[0]


def decode_tokens(encoding: HarmonyEncoding, registry: ToolRegistry, tokens: list[int], reason: str = "stop") -> list[Event]:
    decoder = HarmonyDecoder(encoding, registry)
    events = [event for token in tokens for event in decoder.feed(token)]
    events += decoder.finish(reason)  # type: ignore[arg-type]
    _check_invariants(events)
    return events


def decode(encoding: HarmonyEncoding, registry: ToolRegistry, text: str, reason: str = "stop") -> list[Event]:
    """Events for a completion written as Harmony text (the prompt ended with `<|start|>assistant`)."""
    return decode_tokens(encoding, registry, encoding.encode(text, allowed_special="all"), reason)


def _check_invariants(events: list[Event]) -> None:
    """One Stop, last; messages open and close in turn, and only a message cut short (any stop
    but return or call) stays open; a DecodeError exactly when the Stop is an error."""
    assert [type(e) for e in events].count(Stop) == 1 and isinstance(events[-1], Stop)
    opened = 0
    for event in events:
        if isinstance(event, MessageStarted):
            assert opened == 0
            opened += 1
        elif isinstance(event, MessageDone):
            assert opened == 1
            opened -= 1
    assert opened == 0 or events[-1] not in (Stop("return"), Stop("call"))
    errors = [e for e in events if isinstance(e, DecodeError)]
    assert (events[-1] == Stop("error")) == bool(errors) and len(errors) <= 1


def deltas(events: list[Event], kind: str) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.kind == kind)


def arguments(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ToolArgumentsDelta))


def of(events: list[Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def test_stop_token_ids(encoding: HarmonyEncoding) -> None:
    assert stop_token_ids(encoding) == frozenset({RETURN, CALL})


def test_analysis_then_final(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    text = (
        "<|channel|>analysis<|message|>User greets. Reply briefly.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"
    )
    events = decode(encoding, registry, text)
    assert deltas(events, "reasoning") == "User greets. Reply briefly."
    assert deltas(events, "final") == "Hello! How can I help?"
    assert [(e.kind, e.channel) for e in of(events, MessageStarted)] == [("reasoning", "analysis"), ("final", "final")]
    assert [e.text for e in of(events, MessageDone)] == ["User greets. Reply briefly.", "Hello! How can I help?"]
    assert events[-1] == Stop("return")


def test_analysis_then_tool_call(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    text = "<|channel|>analysis<|message|>Need to list files.<|end|>" + CALL_HEADER + '{"cmd":["ls","-la"]}<|call|>'
    events = decode(encoding, registry, text)
    started = of(events, MessageStarted)[1]
    assert (started.kind, started.recipient, started.content_type) == ("tool_call", "functions.shell", "<|constrain|>json")
    assert arguments(events) == '{"cmd":["ls","-la"]}'
    assert of(events, ToolArgumentsDone) == [
        ToolArgumentsDone("functions.shell", "functions", "shell", '{"cmd":["ls","-la"]}', None)
    ]
    assert deltas(events, "final") == "" and events[-1] == Stop("call")


def test_preamble_then_tool_call(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    text = "<|channel|>commentary<|message|>Listing the files now.<|end|>" + CALL_HEADER + '{"cmd":["ls"]}<|call|>'
    events = decode(encoding, registry, text)
    assert deltas(events, "preamble") == "Listing the files now."
    assert of(events, MessageStarted)[0] == MessageStarted("preamble", "commentary", None, None)
    assert events[-3:] == [
        ToolArgumentsDone("functions.shell", "functions", "shell", '{"cmd":["ls"]}', None),
        MessageDone("tool_call", "commentary", "functions.shell", '{"cmd":["ls"]}'),
        Stop("call"),
    ]


def test_namespaced_tool_with_recipient_before_the_channel(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    # The form openai-harmony renders in prompts: the recipient beside the role.
    text = '<|channel|>analysis<|message|>Spawn one.<|end|><|start|>assistant to=multi_agent_v1.spawn_agent<|channel|>commentary <|constrain|>json<|message|>{"cmd":[]}<|call|>'
    done = of(decode(encoding, registry, text), ToolArgumentsDone)
    assert [(d.namespace, d.name, d.error) for d in done] == [("multi_agent_v1", "spawn_agent", None)]


def test_multibyte_text_is_never_split(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    answer = "Ünïcödé: 日本語のテキスト, emoji 🎉🧑‍💻👍🏽, math ∀x∈ℝ."
    tokens = encoding.encode(f"<|channel|>final<|message|>{answer}<|return|>", allowed_special="all")
    # The encoding does split some of these characters across tokens: the case under test.
    assert any("\ufffd" in encoding.decode([t]) for t in tokens)
    events = decode_tokens(encoding, registry, tokens)
    pieces = [e.text for e in of(events, TextDelta)]
    assert "".join(pieces) == answer and all("\ufffd" not in p for p in pieces)
    assert of(events, MessageDone)[0].text == answer


def test_message_ending_inside_a_character_gets_the_replacement_character(
    encoding: HarmonyEncoding, registry: ToolRegistry
) -> None:
    head = encoding.encode("<|channel|>final<|message|>ok", allowed_special="all")
    half_emoji = encoding.encode(" 🎉")[0]  # " " and the first bytes of the emoji
    tokens = [*head, half_emoji, RETURN]
    events = decode_tokens(encoding, registry, tokens)
    parsed = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert deltas(events, "final") == parsed[0].content[0].text == "ok \ufffd"
    assert events[-1] == Stop("return")


def test_arguments_that_are_not_json(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    events = decode(encoding, registry, CALL_HEADER[len("<|start|>assistant") :] + "ls -la<|call|>")
    (done,) = of(events, ToolArgumentsDone)
    assert done.arguments == "ls -la" and done.error is not None and done.error.kind == "invalid_json"
    assert events[-1] == Stop("call") and not of(events, DecodeError)


def test_arguments_that_break_the_schema(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    events = decode(encoding, registry, CALL_HEADER[len("<|start|>assistant") :] + '{"cmd":"ls"}<|call|>')
    (done,) = of(events, ToolArgumentsDone)
    assert done.error is not None and (done.error.kind, done.error.path) == ("schema", "$.cmd")
    assert events[-1] == Stop("call")


def test_unknown_recipient_is_a_refused_call(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    text = "<|channel|>analysis to=python<|message|>print(1)<|call|>"
    events = decode(encoding, registry, text)
    (done,) = of(events, ToolArgumentsDone)
    assert done.error is not None and done.error.kind == "unknown_tool" and done.recipient == "python"
    assert events[-1] == Stop("call") and not of(events, DecodeError)


@pytest.mark.parametrize(
    ("text", "started", "done", "error_at"),  # error_at: index of the offending token
    [
        ("<|channel|>final<|return|>", 0, 0, 2),  # a stop inside a header
        ("<|channel|>fin<|call|>al<|message|>x<|call|>", 0, 0, 2),
        ("<|channel|>commentary<|message|>I will run ls.<|call|>", 1, 0, 9),  # <|call|> without a recipient
        ("<|channel|>analysis<|message|>thinking<|return|>", 1, 0, 4),  # <|return|> after reasoning
        ("<|channel|>thoughts<|message|>x<|end|>", 0, 0, 3),  # not a Harmony channel
        ("<|message|>no channel<|end|>", 0, 0, 0),
        ("<|channel|>final to=functions.shell<|message|>{}<|call|>", 0, 0, 6),
        ("<|channel|>final<|message|>a<|end|>stray<|start|>", 1, 1, 5),  # text between messages
        ("<|channel|>final<|message|>a<|end|><|start|>user<|message|>hi<|end|>", 1, 1, 7),
        ("<|channel|>final<|message|>a<|channel|>b<|return|>", 1, 0, 4),  # a stray special in content
        ("<|channel|>analysis<|message|>a<|endoftext|>", 1, 0, 4),
        ("<|channel|>commentary to=functions.shell<|message|>{}<|end|>", 1, 0, 9),  # a call must end with <|call|>
    ],
)
def test_malformed_completions_become_decode_errors(
    encoding: HarmonyEncoding, registry: ToolRegistry, text: str, started: int, done: int, error_at: int
) -> None:
    events = decode(encoding, registry, text)
    (error,) = of(events, DecodeError)
    assert error.token_index == error_at and error.message
    assert (len(of(events, MessageStarted)), len(of(events, MessageDone))) == (started, done)
    assert events[-1] == Stop("error") and not of(events, ToolArgumentsDone)


def test_partial_content_is_kept_on_error(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    events = decode(encoding, registry, "<|channel|>final<|message|>Here is the<|start|>")
    assert deltas(events, "final") == "Here is the" and not of(events, MessageDone)
    (error,) = of(events, DecodeError)
    assert error.token_index == 6 and "<|start|>" in error.message and events[-1] == Stop("error")


def test_stream_cut_short(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    events = decode(encoding, registry, CALL_HEADER[len("<|start|>assistant") :] + '{"cmd":["l')
    # Half a tool call is never done: no ToolArgumentsDone, no MessageDone.
    assert arguments(events) == '{"cmd":["l' and not of(events, ToolArgumentsDone) and not of(events, MessageDone)
    assert of(events, DecodeError)[0].token_index == -1 and events[-1] == Stop("error")


@pytest.mark.parametrize("reason", ["length", "context"])
def test_engine_limits_stop_without_error(encoding: HarmonyEncoding, registry: ToolRegistry, reason: str) -> None:
    events = decode(encoding, registry, "<|channel|>analysis<|message|>Still thinking", reason)
    assert deltas(events, "reasoning") == "Still thinking"
    assert events[-1] == Stop(reason) and not of(events, MessageDone)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", ["cancelled", "error"])
def test_engine_failure_is_an_error_stop(encoding: HarmonyEncoding, registry: ToolRegistry, reason: str) -> None:
    events = decode(encoding, registry, "<|channel|>final<|message|>Hi", reason)
    assert events[-1] == Stop("error") and of(events, DecodeError)[0].token_index == -1


@pytest.mark.parametrize("token", [-1, 201089, 10**12])
def test_token_ids_outside_the_vocabulary(encoding: HarmonyEncoding, registry: ToolRegistry, token: int) -> None:
    events = decode_tokens(encoding, registry, [token])
    assert "outside the vocabulary" in of(events, DecodeError)[0].message


def test_overlong_header(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    events = decode(encoding, registry, "<|channel|>commentary to=" + "x " * MAX_HEADER_TOKENS)
    assert of(events, DecodeError)[0].token_index == MAX_HEADER_TOKENS


def test_nothing_after_a_stop(encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
    decoder = HarmonyDecoder(encoding, registry)
    events = [e for t in encoding.encode("<|channel|>final<|message|>ok<|return|>", allowed_special="all") for e in decoder.feed(t)]
    assert events[-1] == Stop("return") and decoder.stopped
    assert decoder.feed(RETURN) == [] and decoder.feed(42) == [] and decoder.finish("stop") == []


def test_codex_turn_end_to_end(encoding: HarmonyEncoding, codex_turn1_request: dict[str, Any]) -> None:
    """The registry a real Codex request renders with checks the calls the model makes."""
    registry = render_responses(codex_turn1_request, encoding, RenderOptions(current_date="2026-11-25")).registry
    head = "<|channel|>analysis<|message|>List the directory.<|end|><|start|>assistant to=functions.exec_command<|channel|>commentary <|constrain|>json<|message|>"
    good = of(decode(encoding, registry, head + '{"cmd":"ls -la","yield_time_ms":1000}<|call|>'), ToolArgumentsDone)
    assert [(d.name, d.error) for d in good] == [("exec_command", None)]
    bad = of(decode(encoding, registry, head + '{"cmd":["ls"]}<|call|>'), ToolArgumentsDone)
    assert bad[0].error is not None and (bad[0].error.kind, bad[0].error.path) == ("schema", "$.cmd")
