"""ScriptedEngine: the playback engine for protocol tests decides by the prompt, plays token by
token with the real tokenizer, and honours the Engine contract (limits, stop tokens, cancel)."""

from __future__ import annotations

import json

import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.api import SamplingParams, TokenEvent
from codexpc.engine.scripted import SCRIPTED_COMMAND, ScriptedEngine, default_script, fixed_scripts
from codexpc.errors import ContextLengthError
from codexpc.harmony.encoding import CALL, RETURN
from codexpc.harmony.render import RenderOptions, render_responses

STOPS = frozenset({RETURN, CALL})
EXEC_TOOL = {"type": "function", "name": "exec_command", "description": "Run a command.",
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}


def prompt(encoding: HarmonyEncoding, body: dict) -> str:
    return encoding.decode_utf8(render_responses(body, encoding, RenderOptions()).tokens)


async def play(engine: ScriptedEngine, tokens: list[int], params: SamplingParams) -> list[TokenEvent]:
    return [event async for event in engine.submit(tokens, params, "req")]


def test_a_shell_tool_and_no_output_yet_means_a_call(encoding: HarmonyEncoding) -> None:
    completion = default_script(prompt(encoding, {"input": "list files", "tools": [EXEC_TOOL]}))
    assert completion.startswith("<|channel|>analysis<|message|>")
    head, _, args = completion.rpartition("<|message|>")
    assert "to=functions.exec_command" in head and args.endswith("<|call|>")
    assert json.loads(args.removesuffix("<|call|>")) == {"cmd": SCRIPTED_COMMAND}


def test_after_a_tool_output_the_answer_quotes_it(encoding: HarmonyEncoding) -> None:
    body = {"tools": [EXEC_TOOL], "input": [
        {"type": "message", "role": "user", "content": "list files"},
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "Process exited with code 0\nOutput:\na.txt\n"}]}
    completion = default_script(prompt(encoding, body))
    assert completion.endswith("<|channel|>final<|message|>The command printed: a.txt<|return|>")


def test_without_tools_the_answer_names_the_question(encoding: HarmonyEncoding) -> None:
    completion = default_script(prompt(encoding, {"input": "What is 2+2?"}))
    assert "<|channel|>final<|message|>Scripted answer to: What is 2+2?<|return|>" in completion


def test_a_new_user_message_after_a_tool_output_asks_for_a_call_again(encoding: HarmonyEncoding) -> None:
    body = {"tools": [EXEC_TOOL], "input": [
        {"type": "message", "role": "user", "content": "list files"},
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a.txt"}]},
        {"type": "message", "role": "user", "content": "again"}]}
    assert default_script(prompt(encoding, body)).endswith("<|call|>")


async def test_playback_is_token_by_token_and_stops_on_a_stop_token(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["<|channel|>final<|message|>hi there<|return|>"]))
    events = await play(engine, [1, 2, 3], SamplingParams(stop_token_ids=STOPS))
    expected = encoding.encode("<|channel|>final<|message|>hi there<|return|>", allowed_special="all")
    assert [e.token_id for e in events] == expected
    assert [e.finish_reason for e in events] == [None] * (len(expected) - 1) + ["stop"]
    assert engine.stats()["finished"] == 1 and list(engine.prompts) == [[1, 2, 3]]


async def test_max_new_tokens_and_the_context_window_end_with_length_and_context(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["<|channel|>final<|message|>one two three<|return|>"]),
                            context_length=8)
    events = await play(engine, [1], SamplingParams(max_new_tokens=3, stop_token_ids=STOPS))
    assert [e.finish_reason for e in events][-2:] == [None, "length"] and len(events) == 4
    events = await play(engine, [1, 2, 3, 4, 5], SamplingParams(stop_token_ids=STOPS))
    assert len(events) == 4 and events[-1] == TokenEvent(None, "context")
    with pytest.raises(ContextLengthError):
        engine.submit(list(range(8)), SamplingParams(), "too-long")


async def test_a_script_without_a_stop_token_runs_out_as_length(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["<|channel|>final<|message|>no stop"]))
    events = await play(engine, [1], SamplingParams(stop_token_ids=STOPS))
    assert events[-1] == TokenEvent(None, "length")


async def test_fixed_scripts_play_in_order_then_repeat_the_last(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["A<|return|>", "B<|return|>"]))
    texts = [encoding.decode_utf8([e.token_id for e in await play(engine, [1], SamplingParams(stop_token_ids=STOPS))
                                   if e.token_id is not None]) for _ in range(3)]
    assert texts == ["A<|return|>", "B<|return|>", "B<|return|>"]


async def test_cancel_ends_the_playback_at_once(encoding: HarmonyEncoding) -> None:
    engine = ScriptedEngine(encoding, script=fixed_scripts(["<|channel|>final<|message|>" + "word " * 50]))
    generation = engine.submit([1], SamplingParams(stop_token_ids=STOPS), "req")
    seen: list[TokenEvent] = []
    async for event in generation:
        seen.append(event)
        if len(seen) == 3:
            await generation.cancel()
    assert seen[-1] == TokenEvent(None, "cancelled") and len(seen) == 4
    assert engine.stats()["cancelled"] == 1 and engine.stats()["running"] == 0
