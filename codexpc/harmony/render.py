"""Requests to Harmony prompt tokens: Responses API and Chat Completions bodies.

openai-harmony does the rendering itself; this module only maps request items onto a
Transcript (codexpc/harmony/conversation.py) and refuses what a local text model cannot take.
Bodies are plain dicts parsed from JSON: anything malformed is a RequestError naming the
JSON path of the offending value.

Codex sends every item type its threads can hold (a thread resumed from another model carries
web searches, tool searches, compaction summaries, ...). Items with a Harmony meaning are
rendered; the others are dropped with a log line, never refused: refusing them would end the
user's thread, while gpt-oss loses nothing it could have read.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openai_harmony import HarmonyEncoding, HarmonyError

from codexpc.efforts import level_of
from codexpc.errors import RequestError
from codexpc.harmony import conversation as conv
from codexpc.harmony.content import as_mapping, as_str, text_parts
from codexpc.harmony.images import refuse_images_of_this_turn
from codexpc.harmony.tools import FUNCTIONS, ToolRegistry, registry_from_chat, registry_from_responses

log = logging.getLogger(__name__)

Effort = conv.Effort
# Item types with no Harmony meaning: dropped with a log line. Any other unknown type is too,
# but these are the ones Codex is known to send (docs/codex-contract in ../shared).
DROPPED_ITEMS = frozenset({
    "web_search_call", "tool_search_call", "tool_search_output", "image_generation_call", "compaction",
    "compaction_summary", "context_compaction", "file_search_call", "computer_call", "computer_call_output",
    "code_interpreter_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call",
    "item_reference", "ghost_snapshot",
})
# What a tool's image output becomes: the model reads text only, and the tool loop must go on.
IMAGE_PLACEHOLDER = "[image omitted: this model reads text only]"


@dataclass(frozen=True)
class RenderOptions:
    default_effort: Effort = "medium"
    knowledge_cutoff: str = "2024-06"
    current_date: str | None = None  # "YYYY-MM-DD"; None means today (UTC)

    def date(self) -> str:
        return self.current_date or datetime.datetime.now(datetime.UTC).date().isoformat()


@dataclass(frozen=True)
class RenderedPrompt:
    tokens: list[int]
    registry: ToolRegistry  # the tools the model may call (empty with tool_choice "none")
    user_parts: int  # user content parts rendered
    messages: int  # Harmony messages rendered, system and developer included
    dropped_reasoning: int  # reasoning items left out (those before the last final answer)
    skipped_tools: list[str] = field(default_factory=list)  # tool types a local model cannot serve
    dropped_items: list[str] = field(default_factory=list)  # input item types with no Harmony meaning


def render_responses(body: Mapping[str, Any], encoding: HarmonyEncoding, options: RenderOptions) -> RenderedPrompt:
    """Prompt tokens for a Responses API body. Raises RequestError / UnsupportedContentError."""
    body = as_mapping(body, "$")
    registry, skipped = registry_from_responses(body.get("tools"))
    transcript = conv.Transcript()
    instructions = body.get("instructions")
    if instructions is not None:
        transcript.instruction(as_str(instructions, "instructions"))
    items = body.get("input")
    dropped: list[str] = []
    if isinstance(items, str):
        transcript.user([items])
    elif isinstance(items, list):
        refuse_images_of_this_turn(items)  # the user must hear it; older images become placeholders
        for i, item in enumerate(items):
            _responses_item(transcript, as_mapping(item, f"input[{i}]"), f"input[{i}]", dropped)
    else:
        raise RequestError("`input` must be a string or a list of items", param="input")
    if dropped:
        log.info("input items dropped, they have no Harmony meaning: %s", ", ".join(dropped))
    response_format = _response_format(body.get("text"))
    if response_format:
        transcript.instruction(response_format)
    reasoning = body.get("reasoning")
    effort = as_mapping(reasoning, "reasoning").get("effort") if reasoning is not None else None
    rendered = _render(transcript, registry, skipped, body.get("tool_choice"), (effort, "reasoning.effort"),
                       encoding, options)
    rendered.dropped_items.extend(dropped)
    return rendered


def render_chat(body: Mapping[str, Any], encoding: HarmonyEncoding, options: RenderOptions) -> RenderedPrompt:
    """Prompt tokens for a Chat Completions body. Raises RequestError / UnsupportedContentError."""
    body = as_mapping(body, "$")
    registry, skipped = registry_from_chat(body.get("tools"))
    transcript = conv.Transcript()
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        _chat_message(transcript, as_mapping(message, f"messages[{i}]"), f"messages[{i}]")
    return _render(transcript, registry, skipped, body.get("tool_choice"),
                   (body.get("reasoning_effort"), "reasoning_effort"), encoding, options)


def _responses_item(t: conv.Transcript, item: Mapping[str, Any], where: str, dropped: list[str]) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        _message_item(t, item, where)
    elif kind == "reasoning":
        text = _reasoning_text(item, where)
        if text:
            t.reasoning(text)
    elif kind == "function_call":
        call_id = as_str(item.get("call_id"), f"{where}.call_id")
        t.call(_recipient(item, where), as_str(item.get("arguments", "{}"), f"{where}.arguments"), call_id)
    elif kind == "custom_tool_call":
        call_id = as_str(item.get("call_id"), f"{where}.call_id")
        t.custom_call(_recipient(item, where), as_str(item.get("input", ""), f"{where}.input"), call_id)
    elif kind == "local_shell_call":
        # Codex's older built-in shell: a call with the action as its JSON arguments.
        shell_id = as_str(item.get("call_id") or item.get("id"), f"{where}.call_id")
        action = json.dumps(item.get("action") or {}, ensure_ascii=False)
        t.call(f"{FUNCTIONS}.local_shell", action, shell_id)
    elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
        call_id = as_str(item.get("call_id"), f"{where}.call_id")
        text = tool_output_text(item.get("output"), f"{where}.output")
        t.tool_result(call_id, text, f"{where}.call_id")
    elif isinstance(kind, str):  # DROPPED_ITEMS and any other kind: no Harmony meaning, left out
        dropped.append(kind)
    else:
        raise RequestError("an input item needs a `type`", param=f"{where}.type")


def _message_item(t: conv.Transcript, item: Mapping[str, Any], where: str) -> None:
    role = item.get("role")
    parts = text_parts(item.get("content"), f"{where}.content", image_placeholder=IMAGE_PLACEHOLDER)
    if role in ("developer", "system"):
        t.instruction("\n".join(parts))
    elif role == "user":
        t.user(parts)
    elif role == "assistant":
        # Codex marks user-visible text written before tool calls with phase "commentary".
        (t.preamble if item.get("phase") == "commentary" else t.answer)("".join(parts))
    else:
        raise RequestError(f"unknown message role {role!r}", param=f"{where}.role")


def _recipient(item: Mapping[str, Any], where: str) -> str:
    name = as_str(item.get("name"), f"{where}.name")
    namespace = item.get("namespace")
    namespace = as_str(namespace, f"{where}.namespace") if namespace is not None else FUNCTIONS
    return f"{namespace}.{name}"


def tool_output_text(output: Any, param: str) -> str:
    """A tool's output: a string, or an array of content items (text kept, images noted)."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise RequestError("a tool output must be a string or a list of content items", param=param)
    texts: list[str] = []
    for i, part in enumerate(output):
        kind = as_mapping(part, f"{param}[{i}]").get("type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(as_str(part.get("text"), f"{param}[{i}].text"))
        elif kind in ("input_image", "image", "input_file"):
            texts.append(IMAGE_PLACEHOLDER if kind != "input_file" else "[file omitted: this model reads text only]")
        else:
            raise RequestError(f"unknown tool output content type {kind!r}", param=f"{param}[{i}].type")
    return "\n".join(texts)


def _response_format(text: Any) -> str | None:
    """`text.format` of type json_schema as Harmony's "# Response Formats" developer section.

    This is how gpt-oss was taught structured output (the Harmony guide); enforcing the schema
    is the constrained decoder's part.
    """
    if text is None:
        return None
    fmt = as_mapping(text, "text").get("format")
    if fmt is None:
        return None
    fmt = as_mapping(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "# Response Formats\n\nAnswer with one JSON object and nothing else."
    if kind != "json_schema":
        raise RequestError("text.format.type must be text, json_object or json_schema", param="text.format.type")
    name = as_str(fmt.get("name", "response"), "text.format.name")
    schema = as_mapping(fmt.get("schema"), "text.format.schema")
    description = fmt.get("description")
    lines = ["# Response Formats", "", f"## {name}", ""]
    if isinstance(description, str) and description:
        lines.append(f"// {description}")
    lines.append(json.dumps(schema, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines)


def _reasoning_text(item: Mapping[str, Any], where: str) -> str:
    """The reasoning's own text when the client sent it back, else its summary."""
    for key, part_type in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(key)
        if parts is None or parts == []:
            continue
        if not isinstance(parts, list):  # false, 0 or "" too: a client's mistake, not "no text"
            raise RequestError(f"`{key}` must be a list", param=f"{where}.{key}")
        texts = text_parts(parts, f"{where}.{key}", accepted=(part_type,))
        return "\n".join(texts)
    return ""


def _chat_message(t: conv.Transcript, message: Mapping[str, Any], where: str) -> None:
    role = message.get("role")
    content = message.get("content")
    parts = text_parts(content, f"{where}.content") if content is not None else []
    if role in ("system", "developer"):
        t.instruction("\n".join(parts))
    elif role == "user":
        t.user(parts)
    elif role == "assistant":
        reasoning = message.get("reasoning_content", message.get("reasoning"))
        if isinstance(reasoning, str) and reasoning:
            t.reasoning(reasoning)
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise RequestError("`tool_calls` must be a list", param=f"{where}.tool_calls")
        text = "".join(parts)
        if calls and text:
            t.preamble(text)
        elif text or not calls:
            t.answer(text)
        for j, call in enumerate(calls):
            _chat_call(t, as_mapping(call, f"{where}.tool_calls[{j}]"), f"{where}.tool_calls[{j}]")
    elif role == "tool":
        call_id = as_str(message.get("tool_call_id"), f"{where}.tool_call_id")
        t.tool_result(call_id, "\n".join(parts), f"{where}.tool_call_id")
    else:
        raise RequestError(f"unknown message role {role!r}", param=f"{where}.role")


def _chat_call(t: conv.Transcript, call: Mapping[str, Any], where: str) -> None:
    function = as_mapping(call.get("function"), f"{where}.function")
    name = as_str(function.get("name"), f"{where}.function.name")
    arguments = as_str(function.get("arguments", "{}"), f"{where}.function.arguments")
    t.call(f"{FUNCTIONS}.{name}", arguments, as_str(call.get("id"), f"{where}.id"))


def _effort(value: Any, default: Effort, param: str) -> Effort:
    return default if value is None else level_of(value, param)


def _render(
    transcript: conv.Transcript,
    registry: ToolRegistry,
    skipped: list[str],
    tool_choice: Any,
    effort: tuple[Any, str],
    encoding: HarmonyEncoding,
    options: RenderOptions,
) -> RenderedPrompt:
    if tool_choice == "none":
        registry = ToolRegistry()  # the model sees no tools, so any call is to an unknown tool
    system = conv.system_message(_effort(effort[0], options.default_effort, effort[1]), options.date(), options.knowledge_cutoff)
    developer = conv.developer_message(transcript.instructions, registry)
    kept, dropped = transcript.kept()
    messages = [system] + ([developer] if developer is not None else []) + kept
    try:
        tokens = conv.render_tokens(encoding, messages)
    except HarmonyError as exc:
        raise RequestError(f"the conversation cannot be rendered as Harmony: {exc}") from exc
    log.debug("rendered %d messages into %d tokens (%d reasoning dropped)", len(messages), len(tokens), dropped)
    return RenderedPrompt(tokens, registry, transcript.user_parts, len(messages), dropped, skipped)
