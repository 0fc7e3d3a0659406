"""Harmony decoder events -> Responses API stream events: a flat translation, no I/O.

One `ResponsesStream` per request. `start()` gives response.created and response.in_progress;
`feed(event)` gives the stream events of one decoder event; `finish(usage)` closes what is
open and gives the terminal event: response.completed, response.incomplete (output cap) or
response.failed (context window, invalid tool call, broken Harmony, engine failure).
The events are the openai package's own types, so the schema is the SDK's, not a copy; only
the per-token delta events are `sse.Delta`s, JSON from a template (tests compare the bytes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseError,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_reasoning_item import Content as ReasoningContent
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from codexpc.harmony.events import (
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
from codexpc.server.sse import Delta, json_string
from codexpc.server.usage import Usage

log = logging.getLogger("codexpc.session")

OutputItem = ResponseReasoningItem | ResponseOutputMessage | ResponseFunctionToolCall
StreamEvent = ResponseStreamEvent | Delta
_DELTA_TYPES = {"reasoning": "response.reasoning_text.delta", "tool_call": "response.function_call_arguments.delta"}


@dataclass(frozen=True)
class ResponseMeta:
    """What the Response object echoes from the request."""

    id: str
    model: str
    created_at: float = field(default_factory=time.time)
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


@dataclass
class _Open:
    """The output item being streamed."""

    kind: MessageKind
    index: int
    item_id: str
    recipient: str = ""
    call_id: str = ""
    parts: list[str] = field(default_factory=list)  # the text so far, one part per delta

    def __post_init__(self) -> None:
        # The delta event's JSON around its text and sequence number, keys in pydantic's order.
        self.delta_type = _DELTA_TYPES.get(self.kind, "response.output_text.delta")
        item = f'"item_id":{json_string(self.item_id)}'
        self.delta_head = '{"delta":' if self.kind == "tool_call" else '{"content_index":0,"delta":'
        logprobs = ',"logprobs":[]' if self.delta_type == "response.output_text.delta" else ""
        self.delta_mid = f',{item}{logprobs},"output_index":{self.index},"sequence_number":'
        self.delta_end = f',"type":"{self.delta_type}"}}'

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str, sequence_number: int) -> Delta:
        self.parts.append(text)
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
        if kind == "reasoning":
            opened = _Open(kind, index, new_id("rs"))
            item: OutputItem = self._reasoning(opened, "in_progress")
        elif kind == "tool_call":
            opened = _Open(kind, index, new_id("fc"), recipient=recipient or "", call_id=new_id("call"))
            item = self._call(opened, "in_progress")
        else:
            opened = _Open(kind, index, new_id("msg"))
            item = self._message(opened, "in_progress")
        self._open = opened
        self._output.append(item)
        events: list[StreamEvent] = [ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=item, output_index=index, sequence_number=self._next())]
        if kind != "tool_call":
            events.append(ResponseContentPartAddedEvent(
                type="response.content_part.added", item_id=opened.item_id, output_index=index, content_index=0,
                part=self._part(opened, ""), sequence_number=self._next()))
        return events

    def _text_delta(self, event: TextDelta) -> list[StreamEvent]:
        opened = self._open
        if opened is not None and opened.kind == event.kind:  # the per-token path
            return [opened.delta(event.text, self._next())]
        events, opened = self._ensure_open(event.kind, None)
        events.append(opened.delta(event.text, self._next()))
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
        events.append(ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done", item_id=opened.item_id, output_index=opened.index,
            arguments=event.arguments, sequence_number=self._next()))
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
        if opened.kind == "reasoning":
            events.append(ResponseReasoningTextDoneEvent(
                type="response.reasoning_text.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, text=opened.text, sequence_number=self._next()))
        elif opened.kind != "tool_call":
            events.append(ResponseTextDoneEvent(
                type="response.output_text.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, text=opened.text, logprobs=[], sequence_number=self._next()))
        if opened.kind != "tool_call":
            events.append(ResponseContentPartDoneEvent(
                type="response.content_part.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, part=self._part(opened, opened.text), sequence_number=self._next()))
        item = self._item(opened, status)
        self._output[opened.index] = item
        events.append(ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=opened.index, sequence_number=self._next()))
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
        return self._message(opened, status)

    @staticmethod
    def _reasoning(opened: _Open, status: Any) -> ResponseReasoningItem:
        content = [ReasoningContent(type="reasoning_text", text=opened.text)] if opened.text else []
        return ResponseReasoningItem(type="reasoning", id=opened.item_id, summary=[], content=content,
                                     encrypted_content=None, status=status)

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
            "output": list(self._output) if status != "in_progress" else [],
            "parallel_tool_calls": m.parallel_tool_calls, "tool_choice": m.tool_choice, "tools": m.tools,
            "temperature": m.temperature, "top_p": m.top_p, "max_output_tokens": m.max_output_tokens,
            "reasoning": m.reasoning, "metadata": m.metadata or {}, "error": error,
            "incomplete_details": incomplete, "usage": _usage(usage) if usage else None,
        }
        if status != "in_progress":
            fields["completed_at"] = time.time()
        # model_construct: the request's tools are echoed as given (namespace tools included).
        return Response.model_construct(**fields)

    def _next(self) -> int:
        self._seq += 1
        return self._seq - 1


def _usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens, cache_write_tokens=0),
        output_tokens=usage.output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.prompt_tokens + usage.output_tokens)
