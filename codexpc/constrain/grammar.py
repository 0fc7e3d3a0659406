"""The grammar of one assistant turn in Harmony, for llguidance.

Generation starts right after the prompt's `<|start|>assistant` (render.py ends every prompt
there; decoder.py starts in the header), so the grammar starts inside the first header:

    turn     := (open <|end|> <|start|>assistant)* close
    open     := <|channel|>analysis <|message|> TEXT          reasoning
              | <|channel|>commentary <|message|> TEXT        a preamble the user sees
    close    := <|channel|>final <|message|> ANSWER <|return|>
              | HEADER(tool) <|message|> BODY(tool) <|call|>  one per tool offered

A tool call's header is either of the two orders openai-harmony parses and gpt-oss writes:
`<|channel|>commentary to=functions.x <|constrain|>json` or ` to=functions.x<|channel|>commentary
<|constrain|>json` (analysis is allowed too, as the decoder allows it). The model stays free in
its text and in which message comes next; only what breaks Harmony, names a tool not offered,
or gives a body that its tool's schema or grammar rejects, is masked.

The result is llguidance's TopLevelGrammar JSON: the turn in Lark, and each body (a JSON schema
or a tool's own Lark grammar) as a grammar of its own that the turn references as `@name`, so a
tool's Lark rules never collide with the turn's or another tool's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from codexpc.constrain.spec import Body, FinalFormat, JsonBody, LarkBody, ToolConstraint

# JSON whitespace between tokens: bounded, so a model stuck on newlines still has to move on
# (unbounded whitespace is the classic way a constrained model loops until max_tokens).
JSON_WHITESPACE = r"[\x20\x0A\x0D\x09]{0,32}"
_CONSTRAIN = "<|constrain|>"
_WORD = re.compile(r"^[A-Za-z0-9_.:/+-]{1,64}$")  # one header word: a recipient or a content type

# Text of a free message: anything but special tokens (llguidance's regexes never match those).
_TURN_RULES = """\
start: (open_msg <|end|> <|start|> "assistant")* close_msg
open_msg: <|channel|> "analysis" <|message|> TEXT
    | <|channel|> "commentary" <|message|> TEXT
call_channel: "commentary" | "analysis"
TEXT: /(?s:.*)/
"""


def turn_grammar(tools: Sequence[ToolConstraint], final: FinalFormat | None, allow_final: bool = True) -> str:
    """The llguidance grammar (TopLevelGrammar JSON) of a turn that may end with a final answer
    (free text when `final` is None, else matching it; not at all when `allow_final` is False)
    or with a call to one of `tools`. At least one ending must remain."""
    if not tools and not allow_final:
        raise ValueError("a turn with no tools and no final answer admits no output")
    lines = [_TURN_RULES]
    grammars: list[dict[str, Any]] = []
    endings: list[str] = []
    if allow_final:
        answer = "TEXT"
        if final is not None:
            grammars.append(body_grammar("final", final.body, final.strict))
            answer = "@final"
        lines.append(f'final_msg: <|channel|> "final" <|message|> {answer} <|return|>')
        endings.append("final_msg")
    for i, tool in enumerate(tools):
        name = f"t{i}"
        grammars.append(body_grammar(name, tool.body, tool.strict))
        lines.append(_call_rule(f"call_{i}", tool, f"@{name}"))
        endings.append(f"call_{i}")
    lines.append("close_msg: " + " | ".join(endings))
    main = {"name": "turn", "lark_grammar": "\n".join(lines) + "\n"}
    return json.dumps({"grammars": [main, *grammars]})


def body_grammar(name: str, body: Body, strict: bool = False) -> dict[str, Any]:
    """One body as a named llguidance grammar."""
    if isinstance(body, LarkBody):
        return {"name": name, "lark_grammar": body.grammar}
    return {"name": name, "json_schema": json_schema_with_options(body, strict)}


def json_schema_with_options(body: JsonBody, strict: bool = False) -> dict[str, Any]:
    """The schema with llguidance's options (its `x-guidance` key): bounded whitespace, and
    keywords it does not implement ignored unless the client asked for strict (then they fail
    the compile, and the client hears why)."""
    schema = dict(body.schema) if isinstance(body.schema, Mapping) else {}
    options = dict(schema.get("x-guidance") or {})
    options.setdefault("whitespace_pattern", JSON_WHITESPACE)
    options.setdefault("lenient", not strict)
    schema["x-guidance"] = options
    return schema


def _call_rule(rule: str, tool: ToolConstraint, body: str) -> str:
    recipient = _word(tool.recipient, "recipient")
    to = _lit(f" to={recipient}")
    header = f'(<|channel|> call_channel {to} | {to} <|channel|> call_channel) {_content_type(tool.content_type)}'
    return f"{rule}: {header} <|message|> {body} <|call|>"


def _content_type(content_type: str | None) -> str:
    """The header's content type, as openai-harmony parses it: ` <|constrain|>json` (the space
    is optional: the parser inserts one) or a plain ` json`; a JSON tool may also leave it out.
    A custom tool's own type (e.g. ` code`) is written exactly."""
    if content_type is None:
        return ""
    if content_type.startswith(_CONSTRAIN):
        rest = _word(content_type.removeprefix(_CONSTRAIN), "content type")
        return f'(" "? <|constrain|> {_lit(rest)} | {_lit(" " + rest)})?'
    return _lit(" " + _word(content_type, "content type"))


def _word(value: str, what: str) -> str:
    if not _WORD.match(value):
        raise ValueError(f"{what} {value!r} cannot be one word of a Harmony header")
    return value


def _lit(text: str) -> str:
    return json.dumps(text)  # a Lark string literal (our words are ASCII without quotes)
