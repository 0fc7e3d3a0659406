"""The turn grammar accepts the Harmony openai-harmony parses and gpt-oss writes, refuses what
breaks it; bad constraints get a clear 400 or a logged fallback."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from constrain_support import tokenizer
from openai_harmony import HarmonyEncoding

from codexpc.constrain import (
    ConstraintError,
    FinalFormat,
    JsonBody,
    LarkBody,
    ToolConstraint,
    constraint_for,
    final_format,
)
from codexpc.harmony.tools import Namespace, ToolRegistry, ToolSpec
from codexpc.server.request import RequestLimits, parse_chat, parse_responses

SHELL = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
         "additionalProperties": False}
REGISTRY = ToolRegistry([Namespace("functions", "", (ToolSpec("functions", "shell", "", SHELL),)),
                         Namespace("agents", "", (ToolSpec("agents", "spawn", "", None),))])


def accepts(encoding: HarmonyEncoding, text: str, registry: ToolRegistry = REGISTRY, **kw: Any) -> bool:
    matcher = constraint_for(registry, kw.pop("final", None), tokenizer(), **kw).start()
    return all(matcher.consume(t) for t in encoding.encode(text, allowed_special="all")) and matcher.is_accepting()


@pytest.mark.parametrize("text", [
    "<|channel|>final<|message|>Hi.<|return|>",
    "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>",
    "<|channel|>commentary<|message|>Running it.<|end|><|start|>assistant<|channel|>commentary to=functions.shell"
    ' <|constrain|>json<|message|>{"cmd": "ls"}<|call|>',
    ' to=functions.shell<|channel|>commentary <|constrain|>json<|message|>{"cmd":"ls"}<|call|>',  # harmony's own order
    '<|channel|>commentary to=functions.shell<|constrain|>json<|message|>{"cmd":"ls"}<|call|>',
    '<|channel|>commentary to=functions.shell json<|message|>{"cmd":"ls"}<|call|>',
    '<|channel|>commentary to=functions.shell<|message|>{"cmd":"ls"}<|call|>',
    "<|channel|>commentary to=agents.spawn <|constrain|>json<|message|>[1, {}]<|call|>",  # no schema: any JSON
    "<|channel|>final<|message|><|return|>",
])
def test_well_formed_turns_are_accepted(encoding: HarmonyEncoding, text: str) -> None:
    assert accepts(encoding, text)


@pytest.mark.parametrize("text", [
    "<|channel|>final<|message|>Hi.<|end|>",  # a final answer ends with <|return|>
    '<|channel|>commentary to=functions.shell <|constrain|>json<|message|>{"cmd":"ls"}<|end|>',
    "<|channel|>analysis<|message|>x<|return|>",
    "<|channel|>analysis<|message|>x<|call|>",
    '<|channel|>commentary to=functions.rm <|constrain|>json<|message|>{"cmd":"ls"}<|call|>',  # not offered
    '<|channel|>final to=functions.shell <|constrain|>json<|message|>{"cmd":"ls"}<|call|>',
    '<|channel|>commentary to=functions.shell <|constrain|>json<|message|>{"cmd":1}<|call|>',  # schema
    '<|channel|>commentary to=functions.shell <|constrain|>json<|message|>{"cmd":"ls","x":1}<|call|>',
    "<|channel|>commentary to=functions.shell <|constrain|>json<|message|>{}<|call|>",  # required
    "<|channel|>chat<|message|>x<|return|>",
    "<|channel|>analysis<|message|>x<|end|><|channel|>final<|message|>y<|return|>",  # no <|start|>
    "<|channel|>analysis<|message|>x<|end|><|start|>user<|channel|>final<|message|>y<|return|>",
    "<|channel|>analysis<|message|>x<|message|>y<|end|>",
])
def test_malformed_turns_are_refused(encoding: HarmonyEncoding, text: str) -> None:
    assert not accepts(encoding, text)


def test_tool_choice_required_and_named(encoding: HarmonyEncoding) -> None:
    final = "<|channel|>final<|message|>Hi.<|return|>"
    spawn = "<|channel|>commentary to=agents.spawn <|constrain|>json<|message|>{}<|call|>"
    assert not accepts(encoding, final, tool_choice="required") and accepts(encoding, spawn, tool_choice="required")
    named = {"type": "function", "name": "spawn", "namespace": "agents"}
    shell = '<|channel|>commentary to=functions.shell <|constrain|>json<|message|>{"cmd":"ls"}<|call|>'
    assert accepts(encoding, spawn, tool_choice=named) and not accepts(encoding, shell, tool_choice=named)
    assert accepts(encoding, final, tool_choice="none") and not accepts(encoding, spawn, tool_choice="none")


def test_a_request_that_admits_no_output_is_a_400() -> None:
    with pytest.raises(ConstraintError, match="no tool is offered") as info:
        constraint_for(ToolRegistry(), None, tokenizer(), tool_choice="required")
    assert info.value.http_status == 400
    with pytest.raises(ConstraintError, match="not offered"):
        constraint_for(REGISTRY, None, tokenizer(), tool_choice={"type": "function", "name": "rm"})


def test_a_strict_tool_llguidance_cannot_compile_is_a_400_naming_it() -> None:
    bad = ToolConstraint("functions.odd", "<|constrain|>json", JsonBody({"type": "strin"}), strict=True)
    with pytest.raises(ConstraintError, match="'functions.odd'.*Invalid type") as info:
        constraint_for(ToolRegistry(), None, tokenizer(), extra_tools=[bad])
    assert info.value.http_status == 400 and info.value.param == "tools"
    empty = ToolConstraint("functions.never", "<|constrain|>json", JsonBody({"allOf": [{"type": "string"},
                                                                                      {"type": "integer"}]}), True)
    with pytest.raises(ConstraintError, match="'functions.never'.*[Uu]nsatisfiable"):
        constraint_for(ToolRegistry(), None, tokenizer(), extra_tools=[empty])


def test_a_non_strict_tool_that_cannot_compile_falls_back_to_validation_logged_once(
        encoding: HarmonyEncoding, caplog: pytest.LogCaptureFixture) -> None:
    bad = ToolConstraint("functions.odd", "<|constrain|>json", JsonBody({"type": "strin", "x": 1}))
    caplog.set_level(logging.WARNING, logger="codexpc.constrain.compile")
    for _ in range(3):
        constraint = constraint_for(ToolRegistry(), None, tokenizer(), extra_tools=[bad])
    warnings = [r for r in caplog.records if "functions.odd" in r.getMessage()]
    assert len(warnings) == 1 and "Invalid type" in warnings[0].getMessage()
    matcher = constraint.start()  # any JSON is accepted for it now; the decoder validates
    text = "<|channel|>commentary to=functions.odd <|constrain|>json<|message|>[true]<|call|>"
    assert all(matcher.consume(t) for t in encoding.encode(text, allowed_special="all"))


def test_a_broken_lark_grammar_is_refused_when_strict() -> None:
    bad = ToolConstraint("functions.patch", "code", LarkBody("start: nothing_defined\n"), strict=True)
    with pytest.raises(ConstraintError, match="'functions.patch'"):
        constraint_for(ToolRegistry(), None, tokenizer(), extra_tools=[bad])


def test_structured_output_formats_of_both_apis_parsed_once_become_one_final_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    limits = RequestLimits()
    responses = parse_responses(json.dumps({"input": "x", "text": {"format": {
        "type": "json_schema", "name": "out", "schema": schema, "strict": True}}}).encode(), limits)
    chat = parse_chat(json.dumps({"messages": [{"role": "user", "content": "x"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}}).encode(), limits)
    assert final_format(responses.text_format) == final_format(chat.text_format) == FinalFormat(
        JsonBody(schema), "out", strict=True)
    plain = parse_responses(json.dumps({"input": "x", "text": {"format": {"type": "text"}}}).encode(), limits)
    assert final_format(plain.text_format) is None
    json_mode = parse_chat(json.dumps({"messages": [], "response_format": {"type": "json_object"}}).encode(), limits)
    assert final_format(json_mode.text_format) == FinalFormat(JsonBody({"type": "object"}), "json_object")
    with pytest.raises(Exception, match="text.format"):
        parse_responses(json.dumps({"input": "x", "text": {"format": {"type": "yaml"}}}).encode(), limits)


def test_a_json_final_format_constrains_only_the_final_answer(encoding: HarmonyEncoding) -> None:
    final = FinalFormat(JsonBody({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}))
    assert accepts(encoding, '<|channel|>analysis<|message|>free text<|end|><|start|>assistant<|channel|>final'
                   '<|message|>{"n": 3}<|return|>', final=final)
    assert not accepts(encoding, "<|channel|>final<|message|>three<|return|>", final=final)


def test_a_custom_tool_from_the_registry_is_constrained_by_its_lark_grammar(encoding: HarmonyEncoding) -> None:
    from pathlib import Path

    from codexpc.harmony.tools import registry_from_responses

    lark = (Path(__file__).parent / "fixtures" / "codex-apply-patch" / "tool_apply_patch.lark").read_text()
    registry, _ = registry_from_responses([{"type": "custom", "name": "apply_patch", "description": "edit files",
                                            "format": {"type": "grammar", "syntax": "lark", "definition": lark}}])
    good = ("<|channel|>commentary to=functions.apply_patch code<|message|>*** Begin Patch\n*** Add File: a.txt\n"
            "+hello\n*** End Patch\n<|call|>")
    assert accepts(encoding, good, registry)
    assert not accepts(encoding, good.replace("*** Add File", "*** Make File"), registry)
    assert not accepts(encoding, good.replace(" code", " <|constrain|>json"), registry)
