"""What a request asks the model's turn to obey, as plain values: one ToolConstraint per callable
tool and an optional format for the final answer.

Every kind of tool reaches the grammar through ToolConstraint: a function tool brings the JSON
schema of its arguments (`<|constrain|>json` in its header); a custom (freeform) tool such as
Codex's apply_patch brings the Lark grammar of its raw input and its own content type. The
structured-output fields of both APIs (`text.format` on Responses, `response_format` on Chat
Completions, parsed once in server/request.py) become a FinalFormat (turn.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import llguidance

from codexpc.harmony.tools import CODE_CONTENT_TYPE, ToolRegistry

JSON_CONTENT_TYPE = "<|constrain|>json"  # what Harmony writes in a JSON tool call's header


@dataclass(frozen=True)
class JsonBody:
    """A message body that is JSON valid against `schema` ({} admits any JSON value)."""

    schema: Mapping[str, Any]


@dataclass(frozen=True)
class LarkBody:
    """A message body that the Lark grammar `grammar` (its `start` rule) accepts."""

    grammar: str


Body = JsonBody | LarkBody


@dataclass(frozen=True)
class ToolConstraint:
    """One tool the model may call: its recipient in the header, the content type Harmony puts
    after it (None: none), and what the call's body must be. `strict`: the client asked for the
    guarantee, so a body llguidance cannot compile is the client's error (400), not a fallback."""

    recipient: str  # "functions.exec_command", "multi_agent_v1.spawn_agent", "functions.apply_patch"
    content_type: str | None
    body: Body
    strict: bool = False


@dataclass(frozen=True)
class FinalFormat:
    """The final answer's text must match `body` (structured output)."""

    body: JsonBody
    name: str = "response"  # the schema's name, for error messages
    strict: bool = False


ANY_TEXT = LarkBody("start: /(?s:.*)/\n")


def tool_constraints(registry: ToolRegistry) -> list[ToolConstraint]:
    """Every tool of a registry: a function tool with its argument schema (none: any JSON); a
    custom tool (content type `code`) with its Lark grammar, its regex as a one-rule grammar, or
    any text. A custom tool's grammar is never `strict` here: Codex's turn must not fail on it."""
    out: list[ToolConstraint] = []
    for name in registry.names():
        spec = registry.get(name)
        assert spec is not None
        if spec.is_custom:
            out.append(ToolConstraint(name, CODE_CONTENT_TYPE, _custom_body(spec.syntax, spec.definition)))
            continue
        schema = spec.parameters if spec.parameters is not None else {}
        out.append(ToolConstraint(name, JSON_CONTENT_TYPE, JsonBody(schema), strict=spec.strict))
    return out


def _custom_body(syntax: str | None, definition: str | None) -> LarkBody:
    if definition is None:
        return ANY_TEXT
    if syntax == "regex":
        return LarkBody(f"start: /{llguidance.regex_to_lark(definition)}/\n")
    return LarkBody(definition)
