"""Harmony decoder events -> Responses API stream events: a flat translation, no I/O.

One `ResponsesStream` per request. `start()` gives response.created and response.in_progress;
`feed(event)` gives the stream events of one decoder event; `finish(usage)` closes what is
open and gives the terminal event: response.completed, response.incomplete (output cap) or
response.failed (context window, invalid tool call, broken Harmony, engine failure).
Output items: reasoning, messages, function calls, and custom (freeform) tool calls, whose raw
input streams as `response.custom_tool_call_input.delta`. When the request asks for a reasoning
summary (`reasoning.summary`), the reasoning streams as summary text, titled the way Codex's TUI
shows it (codexpc/server/reasoning_summary.py); the item keeps the raw text as its content too,
so that Codex sends it back within a tool loop.
The events are the openai package's own types, so the schema is the SDK's, not a copy; only
the per-token delta events are `sse.Delta`s, JSON from a template (tests compare the bytes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCustomToolCall,
    ResponseCustomToolCallInputDoneEvent,
    ResponseError,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseReasoningTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_reasoning_item import Content as ReasoningContent
from openai.types.responses.response_reasoning_item import Summary as ReasoningSummary
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from codexpc.harmony.events import (
    CustomToolInputDelta,
    CustomToolInputDone,
    DecodeError,
    Event,
    MessageDone,
    MessageKind,
    MessageStarted,
    StopReason,
    TextDelta,
    ToolArgumentsDelta,
    ToolArgumentsDone,
)
from codexpc.harmony.tools import FUNCTIONS, split_recipient
from codexpc.server.errors import Failure, engine_failure, tool_failure
from codexpc.server.ids import new_id
from codexpc.server.published_types import (  # the SDK's, with integer timestamps
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
)
from codexpc.server.reasoning_summary import SummaryTitler
from codexpc.server.sse import Delta, json_string
from codexpc.server.usage import Usage

log = logging.getLogger("codexpc.session")

OutputItem = ResponseReasoningItem | ResponseOutputMessage | ResponseFunctionToolCall | ResponseCustomToolCall
StreamEvent = ResponseStreamEvent | Delta
_DELTA_TYPES = {
    "reasoning": "response.reasoning_text.delta",
    "tool_call": "response.function_call_arguments.delta",
    "custom_tool_call": "response.custom_tool_call_input.delta",
}
SUMMARY_DELTA = "response.reasoning_summary_text.delta"
_CALLS = ("tool_call", "custom_tool_call")
_ID_PREFIXES = {"reasoning": "rs", "tool_call": "fc", "custom_tool_call": "ctc"}
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


@dataclass
class _Open:
    """The output item being streamed."""

    kind: MessageKind
    index: int
    item_id: str
    recipient: str = ""
    call_id: str = ""
    parts: list[str] = field(default_factory=list)  # the text so far, one part per delta
    titler: SummaryTitler | None = None  # set: a reasoning item streamed as summary text

    def __post_init__(self) -> None:
        # The delta event's JSON around its text and sequence number, keys in pydantic's order.
        self.delta_type = SUMMARY_DELTA if self.titler else _DELTA_TYPES.get(self.kind, "response.output_text.delta")
        item = f'"item_id":{json_string(self.item_id)}'
        no_content_index = self.kind in _CALLS or self.titler is not None
        self.delta_head = '{"delta":' if no_content_index else '{"content_index":0,"delta":'
        logprobs = ',"logprobs":[]' if self.delta_type == "response.output_text.delta" else ""
        self.delta_mid = f',{item}{logprobs},"output_index":{self.index},"sequence_number":'
        summary = ',"summary_index":0' if self.titler else ""
        self.delta_end = f'{summary},"type":"{self.delta_type}"}}'

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str, sequence_number: int) -> Delta:
        self.parts.append(text)
        return Delta(self.delta_type, self.delta_head, text, f"{self.delta_mid}{sequence_number}{self.delta_end}")

    def summary_delta(self, text: str, sequence_number: int) -> Delta:
        """A delta of the summary text (the raw text is kept in `parts` by the caller)."""
        return Delta(self.delta_type, self.delta_head, text, f"{self.delta_mid}{sequence_number}{self.delta_end}")


class ResponsesStream:
    def __init__(self, meta: ResponseMeta) -> None:
        self.meta = meta
        self._seq = 0
        self._output: list[OutputItem] = []
        self._open: _Open | None = None
        self._stop: StopReason | None = None
        self.failure: Failure | None = None  # set: the response ends as failed
        self.final: Response | None = None  # the terminal Response, once finish() ran

    def start(self) -> list[StreamEvent]:
        response = self._response("in_progress")
        return [ResponseCreatedEvent(type="response.created", response=response, sequence_number=self._next()),
                ResponseInProgressEvent(type="response.in_progress", response=response,
                                        sequence_number=self._next())]

    def feed(self, event: Event) -> list[StreamEvent]:
        if self.failure is not None:
            return []
        if isinstance(event, MessageStarted):
            return self._close_open("incomplete") + self._open_item(event.kind, event.recipient)
        if isinstance(event, TextDelta):
            return self._text_delta(event)
        if isinstance(event, ToolArgumentsDelta):
            return self._arguments_delta(event)
        if isinstance(event, ToolArgumentsDone):
            return self._arguments_done(event)
        if isinstance(event, CustomToolInputDelta):
            return self._custom_delta(event)
        if isinstance(event, CustomToolInputDone):
            return self._custom_done(event)
        if isinstance(event, MessageDone):
            return self._close_open("completed")
        if isinstance(event, DecodeError):
            self.failure = Failure("invalid_model_output", f"the model's output broke Harmony: {event.message}")
            return []
        self._stop = event.reason
        return []

    def finish(self, usage: Usage, engine_error: str | None = None,
               cancelled: bool = False) -> list[StreamEvent]:
        """The terminal events; call once, after the last decoder event. `cancelled`: the engine
        ended the generation itself (daemon stopping, engine closed on reload)."""
        events = self._close_open("incomplete")
        if engine_error is not None:  # the engine's own failure explains any decode error it caused
            self.failure = engine_failure(engine_error)
        elif cancelled:  # the decode error the cut caused says less than this
            self.failure = Failure("cancelled", "the generation was cancelled by the server (stopping or reloading)")
        if self.failure is None and self._stop == "context":
            self.failure = Failure("context_length_exceeded", "the conversation reached the model's context window")
        if self.failure is None and self._stop in ("error", None):
            self.failure = Failure("invalid_model_output", "the model's output ended without a valid stop")
        if self.failure is not None:
            response = self._response("failed", usage, error=self._error())
            events.append(ResponseFailedEvent(type="response.failed", response=response, sequence_number=self._next()))
        elif self._stop == "length":
            details = IncompleteDetails(reason="max_output_tokens")
            response = self._response("incomplete", usage, incomplete=details)
            events.append(ResponseIncompleteEvent(type="response.incomplete", response=response,
                                                  sequence_number=self._next()))
        else:
            response = self._response("completed", usage)
            events.append(ResponseCompletedEvent(type="response.completed", response=response,
                                                 sequence_number=self._next()))
        self.final = response
        return events

    # -- items ---------------------------------------------------------------------------------

    def _open_item(self, kind: MessageKind, recipient: str | None) -> list[StreamEvent]:
        index = len(self._output)
        item_id = new_id(_ID_PREFIXES.get(kind, "msg"))
        if kind in _CALLS:
            opened = _Open(kind, index, item_id, recipient=recipient or "", call_id=new_id("call"))
        else:
            titler = SummaryTitler() if kind == "reasoning" and self.meta.summarize else None
            opened = _Open(kind, index, item_id, titler=titler)
        item = self._item(opened, "in_progress")
        self._open = opened
        self._output.append(item)
        events: list[StreamEvent] = [ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=item, output_index=index, sequence_number=self._next())]
        if opened.titler is not None:
            events.append(ResponseReasoningSummaryPartAddedEvent(
                type="response.reasoning_summary_part.added", item_id=item_id, output_index=index, summary_index=0,
                part={"type": "summary_text", "text": ""}, sequence_number=self._next()))  # type: ignore[arg-type]
        elif kind not in _CALLS:
            events.append(ResponseContentPartAddedEvent(
                type="response.content_part.added", item_id=opened.item_id, output_index=index, content_index=0,
                part=self._part(opened, ""), sequence_number=self._next()))
        return events

    def _text_delta(self, event: TextDelta) -> list[StreamEvent]:
        opened = self._open
        if opened is not None and opened.kind == event.kind and opened.titler is None:  # the per-token path
            return [opened.delta(event.text, self._next())]
        events, opened = self._ensure_open(event.kind, None)
        if opened.titler is None:
            events.append(opened.delta(event.text, self._next()))
            return events
        opened.parts.append(event.text)
        summary = opened.titler.feed(event.text)
        if summary:
            events.append(opened.summary_delta(summary, self._next()))
        return events

    def _custom_delta(self, event: CustomToolInputDelta) -> list[StreamEvent]:
        events, opened = self._ensure_open("custom_tool_call", event.recipient)
        events.append(opened.delta(event.text, self._next()))
        return events

    def _custom_done(self, event: CustomToolInputDone) -> list[StreamEvent]:
        if event.error is not None:
            self.failure = tool_failure(event.error)
            self._drop_open()
            return []
        events, opened = self._ensure_open("custom_tool_call", event.recipient)
        opened.parts = [event.input]
        events.append(ResponseCustomToolCallInputDoneEvent(
            type="response.custom_tool_call_input.done", item_id=opened.item_id, output_index=opened.index,
            input=event.input, sequence_number=self._next()))
        return events

    def _arguments_delta(self, event: ToolArgumentsDelta) -> list[StreamEvent]:
        events, opened = self._ensure_open("tool_call", event.recipient)
        events.append(opened.delta(event.text, self._next()))
        return events

    def _arguments_done(self, event: ToolArgumentsDone) -> list[StreamEvent]:
        if event.error is not None:
            self.failure = tool_failure(event.error)
            log.warning("tool call refused tool=%s kind=%s path=%s why=%s", event.error.tool, event.error.kind,
                        event.error.path, event.error.message)
            self._drop_open()  # an invalid call is never handed to the client to run
            return []
        events, opened = self._ensure_open("tool_call", event.recipient)
        opened.parts = [event.arguments]
        # `name` is required by the published event, absent from the SDK's type (an extra there).
        events.append(ResponseFunctionCallArgumentsDoneEvent(  # type: ignore[call-arg]
            type="response.function_call_arguments.done", item_id=opened.item_id, output_index=opened.index,
            name=split_recipient(opened.recipient)[1], arguments=event.arguments, sequence_number=self._next()))
        return events

    def _ensure_open(self, kind: MessageKind, recipient: str | None) -> tuple[list[StreamEvent], _Open]:
        """The open item of `kind`, opening one if the decoder skipped its MessageStarted."""
        events: list[StreamEvent] = []
        if self._open is None or self._open.kind != kind:
            events = self._close_open("incomplete") + self._open_item(kind, recipient)
        assert self._open is not None
        return events, self._open

    def _close_open(self, status: str) -> list[StreamEvent]:
        opened, self._open = self._open, None
        if opened is None:
            return []
        events: list[StreamEvent] = []
        if opened.titler is not None:
            events += self._close_summary(opened)
        elif opened.kind == "reasoning":
            events.append(ResponseReasoningTextDoneEvent(
                type="response.reasoning_text.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, text=opened.text, sequence_number=self._next()))
        elif opened.kind not in _CALLS:
            events.append(ResponseTextDoneEvent(
                type="response.output_text.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, text=opened.text, logprobs=[], sequence_number=self._next()))
        if opened.kind not in _CALLS and opened.titler is None:
            events.append(ResponseContentPartDoneEvent(
                type="response.content_part.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, part=self._part(opened, opened.text), sequence_number=self._next()))
        item = self._item(opened, status)
        self._output[opened.index] = item
        events.append(ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=opened.index, sequence_number=self._next()))
        return events

    def _close_summary(self, opened: _Open) -> list[StreamEvent]:
        assert opened.titler is not None
        events: list[StreamEvent] = []
        rest = opened.titler.flush()
        if rest:
            events.append(opened.summary_delta(rest, self._next()))
        text = opened.titler.text
        events.append(ResponseReasoningSummaryTextDoneEvent(
            type="response.reasoning_summary_text.done", item_id=opened.item_id, output_index=opened.index,
            summary_index=0, text=text, sequence_number=self._next()))
        events.append(ResponseReasoningSummaryPartDoneEvent(
            type="response.reasoning_summary_part.done", item_id=opened.item_id, output_index=opened.index,
            summary_index=0, part={"type": "summary_text", "text": text},  # type: ignore[arg-type]
            sequence_number=self._next()))
        return events

    def _drop_open(self) -> None:
        if self._open is not None:
            del self._output[self._open.index]
            self._open = None

    def _item(self, opened: _Open, status: Any) -> OutputItem:
        if opened.kind == "reasoning":
            return self._reasoning(opened, status)
        if opened.kind == "tool_call":
            return self._call(opened, status)
        if opened.kind == "custom_tool_call":
            return self._custom_call(opened, status)
        return self._message(opened, status)

    @staticmethod
    def _reasoning(opened: _Open, status: Any) -> ResponseReasoningItem:
        content = [ReasoningContent(type="reasoning_text", text=opened.text)] if opened.text else []
        summary_text = opened.titler.text if opened.titler is not None and status != "in_progress" else ""
        summary = [ReasoningSummary(type="summary_text", text=summary_text)] if summary_text else []
        # No encrypted_content: the schema allows a string or nothing, and there is nothing to encrypt.
        return ResponseReasoningItem(type="reasoning", id=opened.item_id, summary=summary, content=content,
                                     status=status)

    @staticmethod
    def _message(opened: _Open, status: Any) -> ResponseOutputMessage:
        content: list[Any] = []
        if status != "in_progress":
            content.append(ResponseOutputText(type="output_text", text=opened.text, annotations=[], logprobs=[]))
        phase: Any = "final_answer" if opened.kind == "final" else "commentary"
        return ResponseOutputMessage(type="message", id=opened.item_id, role="assistant", status=status,
                                     content=content, phase=phase)

    @staticmethod
    def _call(opened: _Open, status: Any) -> ResponseFunctionToolCall:
        namespace, name = split_recipient(opened.recipient)
        arguments = opened.text if status != "in_progress" else ""
        call = ResponseFunctionToolCall(type="function_call", id=opened.item_id, call_id=opened.call_id, name=name,
                                        arguments=arguments, status=status)
        if namespace != FUNCTIONS:  # a tool inside a Responses `namespace` tool
            call.namespace = namespace
        return call

    @staticmethod
    def _custom_call(opened: _Open, status: Any) -> ResponseCustomToolCall:
        # No status field in the SDK's type; Codex reads call_id, name and input.
        namespace, name = split_recipient(opened.recipient)
        text = opened.text if status != "in_progress" else ""
        call = ResponseCustomToolCall(type="custom_tool_call", id=opened.item_id, call_id=opened.call_id, name=name,
                                      input=text)
        if namespace != FUNCTIONS:
            call.namespace = namespace
        return call

    @staticmethod
    def _part(opened: _Open, text: str) -> Any:
        # A plain dict: the added and done events each define their own reasoning part class.
        if opened.kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    # -- the response ------------------------------------------------------------------------

    def _error(self) -> ResponseError:
        assert self.failure is not None
        # model_construct: our codes (context_length_exceeded, invalid_tool_call) lie outside the
        # SDK's literal list, and the structured fields of a refused call ride along as extras.
        return ResponseError.model_construct(code=self.failure.code, message=self.failure.message,
                                             **self.failure.extra)

    def _response(self, status: str, usage: Usage | None = None, error: ResponseError | None = None,
                  incomplete: IncompleteDetails | None = None) -> Response:
        m = self.meta
        fields: dict[str, Any] = {
            "id": m.id, "object": "response", "created_at": m.created_at, "model": m.model, "status": status,
            "background": m.background, "completed_at": _now() if status == "completed" else None,
            "output": list(self._output) if status != "in_progress" else [],
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

    def _next(self) -> int:
        self._seq += 1
        return self._seq - 1


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
