"""The Response object of the Responses API: what it echoes from the request (`ResponseMeta`), its
usage and its error, built the same way for response.created, the terminal events, the plain
JSON body and the stored copy. The types are the openai package's (integer timestamps from
codexpc/server/published_types.py), so the schema is the SDK's, not a copy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import ResponseError, ResponseUsage
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from codexpc.server.errors import Failure
from codexpc.server.published_types import Response  # the SDK's, with integer timestamps
from codexpc.server.usage import Usage

# `reasoning.summary` values that ask for a summary (OpenAI's; "none" or null ask for none).
SUMMARY_MODES = ("auto", "concise", "detailed")


# What the published Response carries when a request leaves a field out (OpenAI's defaults).
DEFAULT_TEXT: dict[str, Any] = {"format": {"type": "text"}, "verbosity": "medium"}


def _now() -> int:
    return int(time.time())  # the API's timestamps are integer Unix seconds


@dataclass(frozen=True)
class ResponseMeta:
    """What the Response object echoes from the request. Every field has the API's default, so
    a caller fills in only what the request gave."""

    id: str
    model: str
    created_at: int = field(default_factory=_now)
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    instructions: str | list[Any] | None = None
    previous_response_id: str | None = None
    store: bool = True  # the API's default; Codex sends false
    background: bool = False
    text: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TEXT))
    truncation: str = "disabled"
    top_logprobs: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tool_calls: int | None = None
    service_tier: str = "default"
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    user: str | None = None  # deprecated by the API; echoed only when given (the schema has no null)

    @property
    def summarize(self) -> bool:
        """The request asked for a reasoning summary: stream the reasoning as one."""
        return isinstance(self.reasoning, dict) and self.reasoning.get("summary") in SUMMARY_MODES


def response_error(failure: Failure) -> ResponseError:
    """The Response's `error` for a failure."""
    # model_construct: our codes (context_length_exceeded, invalid_tool_call) lie outside the
        # SDK's literal list, and the structured fields of a refused call ride along as extras.
    return ResponseError.model_construct(code=failure.code, message=failure.message, **failure.extra)

def build_response(m: ResponseMeta, status: str, output: list[Any], usage: Usage | None = None,
                   error: ResponseError | None = None, incomplete: IncompleteDetails | None = None) -> Response:
    """The published Response at `status`: the request's echo, the output so far (none while in
    progress), and usage once it is known."""
    fields: dict[str, Any] = {
        "id": m.id, "object": "response", "created_at": m.created_at, "model": m.model, "status": status,
        "background": m.background, "completed_at": _now() if status == "completed" else None,
        "output": list(output) if status != "in_progress" else [],
        "parallel_tool_calls": m.parallel_tool_calls,
        "tool_choice": m.tool_choice if m.tool_choice is not None else "auto",
        "tools": [echo_tool(tool) for tool in m.tools],
        "temperature": m.temperature, "top_p": m.top_p, "max_output_tokens": m.max_output_tokens,
        "max_tool_calls": m.max_tool_calls, "reasoning": m.reasoning, "metadata": m.metadata or {},
        "error": error, "incomplete_details": incomplete, "instructions": m.instructions,
        "previous_response_id": m.previous_response_id, "store": m.store, "text": m.text,
        "truncation": m.truncation, "top_logprobs": m.top_logprobs, "presence_penalty": m.presence_penalty,
        "frequency_penalty": m.frequency_penalty, "service_tier": m.service_tier,
        "safety_identifier": m.safety_identifier, "prompt_cache_key": m.prompt_cache_key,
        "prompt_cache_retention": m.prompt_cache_retention,
    }
    if usage is not None:  # absent until the end: the published schema has no null usage
        fields["usage"] = _usage(usage)
    if m.user is not None:
        fields["user"] = m.user
    # model_construct: the request's tools are echoed as given (namespace tools included).
    return Response.model_construct(**fields)


def echo_tool(tool: Any) -> Any:
    """A request's tool as the Response echoes it: a function tool always carries `strict` (the
    API's default is true) and `parameters`, as the published FunctionTool requires."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {**tool, "strict": tool.get("strict", True), "parameters": tool.get("parameters")}
    return tool


def _usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens, cache_write_tokens=0),
        output_tokens=usage.output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.prompt_tokens + usage.output_tokens)
