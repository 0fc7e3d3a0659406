"""The tool registry of one request: which recipients the model may call, and their schemas.

Built from the request's tools (Responses `function`, `custom` and `namespace` tools, or Chat
Completions `function` tools). Each function tool's JSON schema is checked and compiled once,
when the registry is built; a finished call's arguments are then parsed and validated against it.
A `custom` tool (Codex's apply_patch) takes raw text, not JSON: the model writes its input as the
body of a `code` message (docs/codex-tools.md says why), and its grammar is the constraint
builder's to enforce (`ToolRegistry.constraints()`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import Draft202012Validator, SchemaError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from codexpc.errors import RequestError
from codexpc.harmony.events import ToolCallError

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "<|constrain|>json"  # the content type of a function call's JSON arguments
FUNCTIONS = "functions"  # Harmony's namespace for plain function tools
CODE_CONTENT_TYPE = "code"  # the content type of a custom tool's call, as gpt-oss's python tool uses
MAX_TOOLS = 512  # a bound on what one request can make us compile
# OpenAI's own rule for function names; it also keeps names safe inside a Harmony header
# (no dots, which separate namespace and name; no spaces or special-token text).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ToolSpec:
    """One callable tool: `namespace.name` is the recipient the model writes."""

    namespace: str
    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # JSON schema of the arguments (function tools)
    kind: Literal["function", "custom"] = "function"
    # A custom tool's input format: "lark" or "regex" with its definition; None: free text.
    syntax: str | None = None
    definition: str | None = None
    strict: bool = False  # the client asked for `strict`: constrained decoding must hold (constrain/)

    @property
    def recipient(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def is_custom(self) -> bool:
        return self.kind == "custom"


@dataclass(frozen=True)
class ToolConstraint:
    """What the constraint builder needs to constrain one tool's call body.

    `content_type` is what the model writes after the recipient in the header
    ("<|constrain|>json" for a function tool, "code" for a custom tool). `body` is the JSON
    schema (function tools; None when the tool declared none), the Lark grammar text (custom tools
    whose format is a Lark grammar), or None (free text).
    """

    recipient: str
    content_type: str | None
    body: Mapping[str, Any] | str | None


@dataclass(frozen=True)
class Namespace:
    """A Harmony tool namespace as rendered in the developer message."""

    name: str
    description: str = ""
    tools: tuple[ToolSpec, ...] = field(default_factory=tuple)


class ToolRegistry:
    """The tools offered to the model in one request, with compiled argument validators."""

    def __init__(self, namespaces: Sequence[Namespace] = ()) -> None:
        self._namespaces = tuple(namespaces)
        self._tools: dict[str, ToolSpec] = {}
        self._validators: dict[str, Validator] = {}
        for ns in self._namespaces:
            for tool in ns.tools:
                self._tools[tool.recipient] = tool
                if tool.parameters is not None:
                    self._validators[tool.recipient] = _compile(tool.recipient, tool.parameters)

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """Every recipient offered, e.g. ["functions.shell", "multi_agent_v1.spawn_agent"]."""
        return list(self._tools)

    def namespaces(self) -> list[Namespace]:
        return list(self._namespaces)

    def get(self, recipient: str) -> ToolSpec | None:
        return self._tools.get(recipient)

    def is_custom(self, recipient: str | None) -> bool:
        tool = self._tools.get(recipient) if recipient is not None else None
        return tool is not None and tool.is_custom

    def constraints(self) -> list[ToolConstraint]:
        """One ToolConstraint per offered tool, in the order the model sees them."""
        out: list[ToolConstraint] = []
        for tool in self._tools.values():
            if tool.is_custom:
                grammar = tool.definition if tool.syntax == "lark" else None
                out.append(ToolConstraint(tool.recipient, CODE_CONTENT_TYPE, grammar))
            else:
                out.append(ToolConstraint(tool.recipient, JSON_CONTENT_TYPE, tool.parameters))
        return out

    def validate(self, recipient: str, arguments: str) -> ToolCallError | None:
        """None when the tool was offered and `arguments` is JSON valid against its schema."""
        if recipient not in self._tools:
            return ToolCallError(recipient, "$", f"no tool {recipient!r} was offered", "unknown_tool")
        if self._tools[recipient].is_custom:  # raw text: its grammar is the constrained decoder's
            return None
        try:
            value = json.loads(arguments)
        except ValueError as exc:
            return ToolCallError(recipient, "$", f"arguments are not JSON: {exc}", "invalid_json")
        except RecursionError:  # the model's text is unbounded: "[[[[..." must not escape
            return ToolCallError(recipient, "$", "arguments are nested too deeply", "invalid_json")
        validator = self._validators.get(recipient)
        if validator is None:
            return None
        try:
            error = best_match(validator.iter_errors(value))
        except RecursionError:
            return ToolCallError(recipient, "$", "arguments are nested too deeply", "schema")
        if error is None:
            return None
        return ToolCallError(recipient, error.json_path, error.message, "schema")


def split_recipient(recipient: str) -> tuple[str, str]:
    """("functions", "shell") from "functions.shell"; a bare name is taken as a function."""
    namespace, dot, name = recipient.partition(".")
    return (namespace, name) if dot else (FUNCTIONS, namespace)


def _compile(recipient: str, schema: Mapping[str, Any]) -> Validator:
    """A validator for the schema's own `$schema` dialect, Draft 2020-12 when it names none."""
    # Codex re-sends the same dozen schemas every turn: checking them is most of rendering's cost.
    key = json.dumps(schema, sort_keys=True)
    try:
        return _compile_cached(key)
    except SchemaError as exc:
        raise RequestError(
            f"the parameters of tool {recipient!r} are not a valid JSON schema: {exc.message}", param="tools"
        ) from exc


@functools.lru_cache(maxsize=256)
def _compile_cached(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def registry_from_responses(tools: Any, param: str = "tools") -> tuple[ToolRegistry, list[str]]:
    """The registry from a Responses `tools` list, and the tool types left out (e.g. web_search)."""
    functions: list[ToolSpec] = []
    namespaces: list[Namespace] = []
    skipped: list[str] = []
    for where, tool in _items(tools, param):
        kind = tool.get("type")
        if kind == "function":
            functions.append(_function(tool, FUNCTIONS, where))
        elif kind == "custom":
            functions.append(_custom(tool, FUNCTIONS, where))
        elif kind == "namespace":
            namespaces.append(_namespace(tool, where, skipped))
        else:
            skipped.append(str(kind))
    if skipped:
        log.info("tools left out, a local model cannot serve them: %s", ", ".join(skipped))
    ordered = ([Namespace(FUNCTIONS, "", tuple(functions))] if functions else []) + namespaces
    return _build(ordered, param), skipped


def registry_from_chat(tools: Any, param: str = "tools") -> tuple[ToolRegistry, list[str]]:
    """The registry from a Chat Completions `tools` list, and the tool types left out."""
    functions: list[ToolSpec] = []
    skipped: list[str] = []
    for where, tool in _items(tools, param):
        if tool.get("type") != "function":
            skipped.append(str(tool.get("type")))
            continue
        body = tool.get("function")
        if not isinstance(body, Mapping):
            raise RequestError("a function tool needs a `function` object", param=f"{where}.function")
        functions.append(_function(body, FUNCTIONS, f"{where}.function"))
    if skipped:
        log.info("tools left out, a local model cannot serve them: %s", ", ".join(skipped))
    return _build([Namespace(FUNCTIONS, "", tuple(functions))] if functions else [], param), skipped


def _items(tools: Any, param: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise RequestError("`tools` must be a list", param=param)
    if len(tools) > MAX_TOOLS:
        raise RequestError(f"at most {MAX_TOOLS} tools are accepted", param=param)
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise RequestError("each tool must be an object", param=f"{param}[{i}]")
        yield f"{param}[{i}]", tool


def _function(tool: Mapping[str, Any], namespace: str, where: str) -> ToolSpec:
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError("a tool name must be 1-64 letters, digits, '_' or '-'", param=f"{where}.name")
    description = tool.get("description") or ""
    if not isinstance(description, str):
        raise RequestError("a tool description must be a string", param=f"{where}.description")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise RequestError("tool parameters must be a JSON schema object", param=f"{where}.parameters")
    return ToolSpec(namespace, name, description, parameters, strict=tool.get("strict") is True)


def _custom(tool: Mapping[str, Any], namespace: str, where: str) -> ToolSpec:
    """A Responses `custom` tool: freeform text, optionally with a Lark or regex grammar."""
    base = _function({k: v for k, v in tool.items() if k != "parameters"}, namespace, where)
    fmt = tool.get("format")
    if fmt is None or (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        return ToolSpec(namespace, base.name, base.description, kind="custom")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "grammar":
        raise RequestError("a custom tool's format must be {\"type\": \"text\"} or a grammar",
                           param=f"{where}.format")
    syntax, definition = fmt.get("syntax"), fmt.get("definition")
    if syntax not in ("lark", "regex") or not isinstance(definition, str):
        raise RequestError("a grammar format needs syntax \"lark\" or \"regex\" and a definition string",
                           param=f"{where}.format")
    return ToolSpec(namespace, base.name, base.description, kind="custom", syntax=syntax, definition=definition)


def _namespace(tool: Mapping[str, Any], where: str, skipped: list[str]) -> Namespace:
    """A `namespace` tool; member types other than function are appended to `skipped`."""
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name == FUNCTIONS:
        raise RequestError("a namespace name must be 1-64 letters, digits, '_' or '-'", param=f"{where}.name")
    members: list[ToolSpec] = []
    for inner, member in _items(tool.get("tools"), f"{where}.tools"):
        if member.get("type") == "function":
            members.append(_function(member, name, inner))
        elif member.get("type") == "custom":
            members.append(_custom(member, name, inner))
        else:
            skipped.append(str(member.get("type")))
    return Namespace(name, str(tool.get("description") or ""), tuple(members))


def _build(namespaces: list[Namespace], param: str) -> ToolRegistry:
    """The registry, refusing duplicate names (and, in ToolRegistry, invalid schemas)."""
    seen: set[str] = set()
    for ns in namespaces:
        for tool in ns.tools:
            if tool.recipient in seen:
                raise RequestError(f"tool {tool.recipient!r} is offered twice", param=param)
            seen.add(tool.recipient)
    return ToolRegistry(namespaces)
