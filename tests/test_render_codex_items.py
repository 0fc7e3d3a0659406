"""Everything Codex sends renders: custom tools and calls, every item type, efforts, text.format."""

from __future__ import annotations

from typing import Any

import pytest
from openai_harmony import HarmonyEncoding

from codexpc.harmony.render import IMAGE_PLACEHOLDER, RenderOptions, render_responses
from codexpc.harmony.tools import ToolConstraint

OPTIONS = RenderOptions(current_date="2026-01-01")
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files. FREEFORM tool.",
               "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
SHELL = {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}}
USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "edit"}]}


def _text(encoding: HarmonyEncoding, body: dict[str, Any]) -> str:
    return encoding.decode_utf8(render_responses(body, encoding, OPTIONS).tokens)


def test_a_custom_tool_is_a_function_of_one_string_with_its_grammar(encoding: HarmonyEncoding) -> None:
    text = _text(encoding, {"input": [USER], "tools": [APPLY_PATCH, SHELL]})
    assert "type apply_patch = (_: string) => any;" in text
    assert "// Input grammar (lark):\n// start: begin_patch hunk+ end_patch" in text
    assert "content type `code`" in text


def test_the_registry_gives_the_constraint_builder_each_tools_body(encoding: HarmonyEncoding) -> None:
    prompt = render_responses({"input": [USER], "tools": [APPLY_PATCH, SHELL, {"type": "custom", "name": "free"}]},
                              encoding, OPTIONS)
    assert prompt.registry.constraints() == [
        ToolConstraint("functions.apply_patch", "code", GRAMMAR),
        ToolConstraint("functions.exec_command", "<|constrain|>json", SHELL["parameters"]),
        ToolConstraint("functions.free", "code", None),
    ]


def test_custom_calls_and_outputs_of_an_earlier_turn_render(encoding: HarmonyEncoding) -> None:
    items = [USER, {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch\n"},
             {"type": "custom_tool_call_output", "call_id": "c1", "output": "Success."}]
    text = _text(encoding, {"input": items, "tools": [APPLY_PATCH]})
    assert "<|start|>assistant to=functions.apply_patch<|channel|>commentary code<|message|>*** Begin Patch\n<|call|>" \
        in text
    assert "<|start|>functions.apply_patch to=assistant<|channel|>commentary<|message|>Success.<|end|>" in text


def test_items_without_a_harmony_meaning_are_dropped_not_refused(encoding: HarmonyEncoding) -> None:
    kinds = ["web_search_call", "tool_search_call", "tool_search_output", "image_generation_call", "compaction",
             "compaction_summary", "context_compaction", "something_new"]
    body = {"input": [USER, *({"type": k, "id": "x"} for k in kinds)]}
    assert render_responses(body, encoding, OPTIONS).dropped_items == kinds


def test_tool_outputs_as_content_arrays_and_assistant_phases(encoding: HarmonyEncoding) -> None:
    items = [USER, {"type": "function_call", "call_id": "c", "name": "exec_command", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c",
              "output": [{"type": "input_text", "text": "line"}, {"type": "input_image", "image_url": "data:"}]},
             {"type": "local_shell_call", "call_id": "l", "action": {"type": "exec", "command": ["ls"]}},
             {"type": "function_call_output", "call_id": "l", "output": "a.txt"},
             {"type": "message", "role": "assistant", "phase": "commentary", "content": [{"type": "output_text",
                                                                                       "text": "Looking."}]},
             {"type": "message", "role": "assistant", "phase": "final_answer", "status": "completed",
              "content": [{"type": "output_text", "text": "Done."}]}]
    text = _text(encoding, {"input": items, "tools": [SHELL]})
    assert f"line\n{IMAGE_PLACEHOLDER}<|end|>" in text and "a.txt<|end|>" in text
    assert "<|channel|>commentary<|message|>Looking.<|end|>" in text and "<|channel|>final<|message|>Done." in text


@pytest.mark.parametrize(("effort", "level"), [("none", "low"), ("minimal", "low"), ("low", "low"),
                                                ("medium", "medium"), ("high", "high"), ("xhigh", "high"),
                                                ("max", "high")])
def test_every_effort_codex_sends_renders(encoding: HarmonyEncoding, effort: str, level: str) -> None:
    assert f"Reasoning: {level}" in _text(encoding, {"input": "hi", "reasoning": {"effort": effort}})


def test_text_format_becomes_a_response_formats_section(encoding: HarmonyEncoding) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    body = {"input": "hi", "text": {"format": {"type": "json_schema", "name": "codex_output_schema",
                                               "schema": schema, "strict": True}}}
    text = _text(encoding, body)
    assert '# Response Formats\n\n## codex_output_schema\n\n{"type":"object","properties"' in text
    assert "Response Formats" not in _text(encoding, {"input": "hi", "text": {"format": {"type": "text"}}})
