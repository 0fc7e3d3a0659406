"""Each request parsed once, at the edge, into a frozen value; every check of its fields is here.

A Responses body becomes a `ResponsesRequest`, a Chat Completions body a `ChatRequest`. Below
this module nothing looks at a request's JSON for options again: the session reads `sampling`,
the stream echoes `echo`, the renderer reads the conversation (`body`'s input or messages, whose
items it checks as it maps them onto Harmony). A value out of range is a RequestError (400)
naming the parameter, before anything is rendered or queued.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from codexpc.efforts import Level, level_of
from codexpc.errors import RequestError
from codexpc.server.body import parse_body
from codexpc.server.request_checks import check_responses_body
from codexpc.server.request_fields import count, flag, number, optional

# What a torch.Generator takes (a signed or unsigned 64-bit integer); a bigger seed overflows it.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on what one request may ask for; beyond them a request gets a 4xx naming the field."""

    max_output_tokens: int | None = None  # the cap on a request's max_output_tokens; None: the context
    default_max_output_tokens: int | None = None  # when a request does not say; None: up to the context
    max_input_items: int | None = None
    max_tools: int | None = None
    max_tool_schema_bytes: int | None = None  # one tool's JSON schema, serialized
    # Requests admitted at once; past them up to `queue_size` more wait in FIFO order
    # (server/admission.py), and past those a request gets a 503 that every Codex version retries.
    queue_size: int | None = None
    max_in_flight: int | None = None
    max_body_bytes: int | None = None  # None: server/body.py's default

    @classmethod
    def from_config(cls, limits: Any) -> RequestLimits:
        """From any object with these attributes (the daemon's LimitsConfig); missing ones stay None."""
        return cls(**{f.name: getattr(limits, f.name, None) for f in fields(cls)})


@dataclass(frozen=True)
class Sampling:
    """The sampling options a request asked for, checked; None: the server's default."""

    max_output_tokens: int | None = None
    temperature: float = 1.0  # gpt-oss's recommended sampling: temperature 1, top_p 1
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class TextFormat:
    """What the final answer must be: `text.format` (Responses) or `response_format` (Chat)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: Mapping[str, Any] | None = None  # with json_schema
    strict: bool = False

    @property
    def constrained(self) -> bool:
        return self.type != "text"


@dataclass(frozen=True)
class OutputShape:
    """What constrains the model's turn and where it runs: the final answer's format, which
    tools it may call (tool_choice), and the conversation's key (Codex's prompt_cache_key), by
    which an engine with several back ends keeps one conversation on one of them."""

    text_format: TextFormat = TextFormat()
    tool_choice: Any = "auto"
    routing_key: str | None = None


@dataclass(frozen=True)
class ResponsesEcho:
    """What the Response object repeats from the request, as the request gave it."""

    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    instructions: str | None = None
    text: dict[str, Any] | None = None
    store: bool = True
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None


@dataclass(frozen=True)
class ResponsesRequest:
    body: Mapping[str, Any]  # the JSON, for the renderer's walk over `input` and `tools`
    model: str | None
    stream: bool
    sampling: Sampling
    effort: Level | None  # gpt-oss's level for reasoning.effort; None: the server's default
    text_format: TextFormat
    echo: ResponsesEcho

    @property
    def shape(self) -> OutputShape:
        return OutputShape(self.text_format, self.echo.tool_choice, self.echo.prompt_cache_key)


@dataclass(frozen=True)
class ChatRequest:
    body: Mapping[str, Any]  # the JSON, for the renderer's walk over `messages` and `tools`
    model: str | None
    stream: bool
    sampling: Sampling
    effort: Level | None
    include_usage: bool  # stream_options.include_usage
    text_format: TextFormat
    tool_choice: Any = "auto"  # in the Responses API's shapes ("auto", ..., {"type", "name"})
    prompt_cache_key: str | None = None

    @property
    def shape(self) -> OutputShape:
        return OutputShape(self.text_format, self.tool_choice, self.prompt_cache_key)


def parse_responses(raw: bytes, limits: RequestLimits) -> ResponsesRequest:
    """POST /v1/responses's body, checked; RequestError (400) naming the first bad parameter."""
    body = _object(raw, limits)
    check_responses_body(body)  # every published enum and range, 400 naming the parameter
    _refuse_stored_state(body)
    _check_counts(body, "input", limits)
    sampling = _sampling(body, limits, "max_output_tokens")
    reasoning = _reasoning(body)
    text = optional(body, "text", dict, "an object")
    text_format = _text_format((text or {}).get("format"), "text.format")
    echo = ResponsesEcho(
        tools=body.get("tools") or [], tool_choice=body["tool_choice"] if body.get("tool_choice") is not None
        else "auto", parallel_tool_calls=flag(body, "parallel_tool_calls", True), reasoning=reasoning,
        metadata=_metadata(body), max_output_tokens=body.get("max_output_tokens"),
        temperature=sampling.temperature, top_p=sampling.top_p,
        instructions=optional(body, "instructions", str, "a string"), text=text,
        store=flag(body, "store", True), previous_response_id=body.get("previous_response_id"),
        prompt_cache_key=optional(body, "prompt_cache_key", str, "a string"))
    effort = reasoning.get("effort") if reasoning else None
    return ResponsesRequest(body=body, model=_model(body), stream=flag(body, "stream", False), sampling=sampling,
                            effort=level_of(effort) if effort is not None else None,
                            text_format=text_format, echo=echo)


def parse_chat(raw: bytes, limits: RequestLimits) -> ChatRequest:
    """POST /v1/chat/completions's body, checked."""
    body = _object(raw, limits)
    _check_counts(body, "messages", limits)
    options = optional(body, "stream_options", dict, "an object") or {}
    effort = body.get("reasoning_effort")
    return ChatRequest(body=body, model=_model(body), stream=flag(body, "stream", False),
                       sampling=_sampling(body, limits, "max_tokens", "max_completion_tokens"),
                       effort=level_of(effort, "reasoning_effort") if effort is not None else None,
                       include_usage=flag(options, "include_usage", False, "stream_options.include_usage"),
                       text_format=_chat_format(body.get("response_format")),
                       tool_choice=_chat_tool_choice(body.get("tool_choice")),
                       prompt_cache_key=optional(body, "prompt_cache_key", str, "a string"))


def _chat_tool_choice(choice: Any) -> Any:
    """Chat's {"type": "function", "function": {"name"}} as the Responses API's {"type", "name"}."""
    if choice is None:
        return "auto"
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if not isinstance(name, str) or not name:
            raise RequestError("tool_choice.function.name must be a string", param="tool_choice.function.name")
        return {"type": "function", "name": name}
    if choice not in ("auto", "none", "required") and not isinstance(choice, Mapping):
        raise RequestError('tool_choice must be "auto", "none", "required" or a function', param="tool_choice")
    return choice


# -- the parts -------------------------------------------------------------------------------


def _object(raw: bytes, limits: RequestLimits) -> dict[str, Any]:
    return parse_body(raw) if limits.max_body_bytes is None else parse_body(raw, limits.max_body_bytes)


def _model(body: Mapping[str, Any]) -> str | None:
    return optional(body, "model", str, "a string")


def _sampling(body: Mapping[str, Any], limits: RequestLimits, *max_keys: str) -> Sampling:
    """Sampling options of a Responses (`max_output_tokens`) or Chat (`max_tokens`...) body."""
    caps = []
    for key in max_keys:
        requested = count(body, key)
        if requested is not None:
            if limits.max_output_tokens is not None and requested > limits.max_output_tokens:
                raise RequestError(f"{key} must be at most {limits.max_output_tokens}", param=key)
            caps.append(requested)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("seed must be an integer", param="seed")
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise RequestError(f"seed must be between {SEED_MIN} and {SEED_MAX}", param="seed")
    top_p = number(body, "top_p", 0.0, 1.0, 1.0)
    if top_p == 0:
        raise RequestError("top_p must be greater than 0", param="top_p")
    return Sampling(max_output_tokens=min(caps) if caps else limits.default_max_output_tokens,
                    temperature=number(body, "temperature", 0.0, 2.0, 1.0), top_p=top_p, seed=seed)


def _check_counts(body: Mapping[str, Any], items_key: str, limits: RequestLimits) -> None:
    """Counts and sizes of the request's items and tools."""
    items = body.get(items_key)
    if limits.max_input_items is not None and isinstance(items, list) and len(items) > limits.max_input_items:
        raise RequestError(f"{items_key} has {len(items)} items; at most {limits.max_input_items} are accepted",
                           param=items_key)
    tools = body.get("tools")
    if not isinstance(tools, list):
        return
    if limits.max_tools is not None and len(tools) > limits.max_tools:
        raise RequestError(f"tools has {len(tools)} tools; at most {limits.max_tools} are accepted", param="tools")
    if limits.max_tool_schema_bytes is None:
        return
    for index, tool in enumerate(tools):
        if len(json.dumps(tool, separators=(",", ":"))) > limits.max_tool_schema_bytes:
            raise RequestError(f"tools[{index}] is larger than {limits.max_tool_schema_bytes} bytes",
                               param=f"tools[{index}]")


def _refuse_stored_state(body: Mapping[str, Any]) -> None:
    # Conversations (the Conversations API's objects) are not kept, only responses (codexpc.store
    # resolves previous_response_id in app.py); ignoring these would answer another question.
    for key in ("conversation",):
        if body.get(key) is not None:
            raise RequestError(f"{key} is not supported: this server keeps no conversations; continue one "
                               "with previous_response_id or send it whole in input", param=key,
                               code="unsupported_parameter")
    if body.get("background"):
        raise RequestError("background responses are not supported", param="background",
                           code="unsupported_parameter")


def _reasoning(body: Mapping[str, Any]) -> dict[str, Any] | None:
    reasoning = optional(body, "reasoning", dict, "an object")
    if reasoning is None:
        return None
    effort = reasoning.get("effort")
    if effort is not None:
        level_of(effort)  # the one table of efforts: "xhigh" and "none" are names too
    return {"effort": effort, "summary": reasoning.get("summary")}


def _metadata(body: Mapping[str, Any]) -> dict[str, str] | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise RequestError("metadata must map strings to strings", param="metadata")
    return metadata


def _text_format(value: Any, param: str) -> TextFormat:
    """Responses' `text.format`: {"type": "text" | "json_object" | "json_schema", name, schema, strict}."""
    if value is None:
        return TextFormat()
    if not isinstance(value, dict):
        raise RequestError(f"{param} must be an object", param=param)
    kind = value.get("type")
    if kind == "text" or kind == "json_object":
        return TextFormat(kind)
    if kind != "json_schema":
        raise RequestError(f"{param}.type must be one of text, json_object, json_schema", param=f"{param}.type")
    schema = value.get("schema")
    if not isinstance(schema, dict):
        raise RequestError(f"{param}.schema must be a JSON schema object", param=f"{param}.schema")
    name = optional(value, "name", str, "a string", f"{param}.name")
    return TextFormat("json_schema", name, schema, flag(value, "strict", False, f"{param}.strict"))


def _chat_format(value: Any) -> TextFormat:
    """Chat's `response_format`: the same, with the schema one level down in `json_schema`."""
    if value is None or not isinstance(value, dict) or value.get("type") != "json_schema":
        return _text_format(value, "response_format")
    inner = value.get("json_schema")
    if not isinstance(inner, dict):
        raise RequestError("response_format.json_schema must be an object", param="response_format.json_schema")
    return _text_format({"type": "json_schema", **inner}, "response_format.json_schema")

