"""From a request's tools and formats to a compiled Constraint, or a clear refusal.

Each body (a tool's JSON schema or Lark grammar, the final answer's schema) is checked alone
first, so a failure names its tool and reason:
- llguidance cannot compile it, or it admits no value at all: with `strict` the request is
  refused (400 naming the tool); without, that body is left unconstrained (any JSON for a JSON
  tool, any text otherwise): the decoder still validates it, and the reason is logged once;
- a turn with no way to end (tool_choice "required" and no tool, say) is refused (400).
Codex sends the same dozen schemas every turn: checks and whole grammars are cached by text.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import llguidance

from codexpc.constrain.grammar import body_grammar, turn_grammar
from codexpc.constrain.matcher import Constraint
from codexpc.constrain.spec import ANY_TEXT, FinalFormat, JsonBody, ToolConstraint, tool_constraints
from codexpc.errors import RequestError
from codexpc.harmony.tools import ToolRegistry

log = logging.getLogger(__name__)

ANY_JSON = JsonBody({})


class ConstraintError(RequestError):
    """A request whose constraints cannot be compiled (with strict) or admit no output."""

    code = "invalid_constraint"


def constraint_for(registry: ToolRegistry, final: FinalFormat | None, tokenizer: llguidance.LLTokenizer,
                   tool_choice: Any = "auto", extra_tools: Sequence[ToolConstraint] = ()) -> Constraint:
    """The constraint of one request's turn: the registry's function tools, plus `extra_tools`
    (custom tools with a Lark body), the structured-output format of the final answer, and
    tool_choice ("auto", "none", "required", or {"type": "function", "name": ...})."""
    tools = tool_constraints(registry) + list(extra_tools)
    allow_final, tools = _apply_tool_choice(tool_choice, tools)
    checked = [_checked_tool(t, tokenizer) for t in tools]
    final = _checked_final(final, tokenizer) if allow_final else None
    if not checked and not allow_final:
        raise ConstraintError("tool_choice requires a tool call, but no tool is offered: no output is possible",
                              param="tool_choice")
    try:
        grammar = turn_grammar(checked, final, allow_final)
    except ValueError as exc:  # a recipient or content type that is not one header word
        raise ConstraintError(f"the turn cannot be constrained: {exc}", param="tools") from exc
    return _compiled(grammar, tokenizer)


def _apply_tool_choice(choice: Any, tools: list[ToolConstraint]) -> tuple[bool, list[ToolConstraint]]:
    """(may the turn end with a final answer, the tools it may call)."""
    if choice is None or choice == "auto":
        return True, tools
    if choice == "none":
        return True, []
    if choice == "required":
        return False, tools
    if isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        name = choice["name"]
        ns = choice.get("namespace") or "functions"
        wanted = [t for t in tools if t.recipient in (name, f"{ns}.{name}")]
        if not wanted:
            raise ConstraintError(f"tool_choice names {name!r}, which is not offered", param="tool_choice")
        return False, wanted
    return True, tools  # other shapes (allowed_tools, hosted tools): leave the choice to the model


def _checked_tool(tool: ToolConstraint, tokenizer: llguidance.LLTokenizer) -> ToolConstraint:
    problem = check_body(json.dumps(body_grammar("b", tool.body, tool.strict)), tokenizer)
    if problem is None:
        return tool
    if tool.strict:
        raise ConstraintError(f"tool {tool.recipient!r} cannot be enforced: {problem}", param="tools")
    fallback = ANY_JSON if isinstance(tool.body, JsonBody) else ANY_TEXT
    _log_once(f"tool {tool.recipient!r}", problem)
    return ToolConstraint(tool.recipient, tool.content_type, fallback, strict=False)


def _checked_final(final: FinalFormat | None, tokenizer: llguidance.LLTokenizer) -> FinalFormat | None:
    if final is None:
        return None
    problem = check_body(json.dumps(body_grammar("b", final.body, final.strict)), tokenizer)
    if problem is None:
        return final
    if final.strict:
        raise ConstraintError(f"the response format {final.name!r} cannot be enforced: {problem}", param="text.format")
    _log_once(f"response format {final.name!r}", problem)
    return None


@functools.lru_cache(maxsize=512)
def check_body(body_json: str, tokenizer: llguidance.LLTokenizer) -> str | None:
    """None when llguidance compiles this one body and it admits some output, else why not."""
    grammar = json.dumps({"grammars": [json.loads(body_json)]})
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if is_error:
        return messages[0] if messages else "llguidance refused it"
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if matcher.is_error():
        return matcher.get_error()
    if not matcher.is_accepting() and not any(matcher.compute_bitmask()):
        return "it admits no value at all"
    return None


@functools.lru_cache(maxsize=64)
def _compiled(grammar: str, tokenizer: llguidance.LLTokenizer) -> Constraint:
    constraint = Constraint(grammar, tokenizer)
    if constraint.error:  # the parts compiled alone, so this is ours: say so, do not run blind
        raise ConstraintError(f"the turn's grammar does not compile: {constraint.error}")
    return constraint


@functools.lru_cache(maxsize=1024)
def _log_once(what: str, problem: str) -> None:
    log.warning("constrained decoding: %s is not enforced, only validated afterwards: %s", what, problem)
