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
The items themselves are codexpc/server/output_items.py's; the Response object, what it echoes
from the request and its usage are codexpc/server/response_object.py's.
"""

from __future__ import annotations

import logging

from openai.types.responses import (
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCustomToolCallInputDoneEvent,
    ResponseError,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseReasoningTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response import IncompleteDetails

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
from codexpc.harmony.tools import split_recipient
from codexpc.server.errors import Failure, engine_failure, tool_failure
from codexpc.server.ids import new_id
from codexpc.server.output_items import CALLS, ID_PREFIXES, OpenItem, OutputItem, content_part, output_item
from codexpc.server.published_types import (  # the SDK's, with integer timestamps
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
)
from codexpc.server.reasoning_summary import SummaryTitler
from codexpc.server.response_object import ResponseMeta, build_response, response_error
from codexpc.server.sse import Delta
from codexpc.server.usage import Usage

log = logging.getLogger("codexpc.session")

StreamEvent = ResponseStreamEvent | Delta


class ResponsesStream:
    def __init__(self, meta: ResponseMeta) -> None:
        self.meta = meta
        self._seq = 0
        self._output: list[OutputItem] = []
        self._open: OpenItem | None = None
        self._stop: StopReason | None = None
        self.failure: Failure | None = None  # set: the response ends as failed
        self.final: Response | None = None  # the terminal Response, once finish() ran

    def start(self) -> list[StreamEvent]:
        response = self._response_at("in_progress")
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
            response = self._response_at("failed", usage, error=response_error(self.failure))
            events.append(ResponseFailedEvent(type="response.failed", response=response, sequence_number=self._next()))
        elif self._stop == "length":
            details = IncompleteDetails(reason="max_output_tokens")
            response = self._response_at("incomplete", usage, incomplete=details)
            events.append(ResponseIncompleteEvent(type="response.incomplete", response=response,
                                                  sequence_number=self._next()))
        else:
            response = self._response_at("completed", usage)
            events.append(ResponseCompletedEvent(type="response.completed", response=response,
                                                 sequence_number=self._next()))
        self.final = response
        return events

    # -- items ---------------------------------------------------------------------------------

    def _open_item(self, kind: MessageKind, recipient: str | None) -> list[StreamEvent]:
        index = len(self._output)
        item_id = new_id(ID_PREFIXES.get(kind, "msg"))
        if kind in CALLS:
            opened = OpenItem(kind, index, item_id, recipient=recipient or "", call_id=new_id("call"))
        else:
            titler = SummaryTitler() if kind == "reasoning" and self.meta.summarize else None
            opened = OpenItem(kind, index, item_id, titler=titler)
        item = output_item(opened, "in_progress")
        self._open = opened
        self._output.append(item)
        events: list[StreamEvent] = [ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=item, output_index=index, sequence_number=self._next())]
        if opened.titler is not None:
            events.append(ResponseReasoningSummaryPartAddedEvent(
                type="response.reasoning_summary_part.added", item_id=item_id, output_index=index, summary_index=0,
                part={"type": "summary_text", "text": ""}, sequence_number=self._next()))  # type: ignore[arg-type]
        elif kind not in CALLS:
            events.append(ResponseContentPartAddedEvent(
                type="response.content_part.added", item_id=opened.item_id, output_index=index, content_index=0,
                part=content_part(opened, ""), sequence_number=self._next()))
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

    def _ensure_open(self, kind: MessageKind, recipient: str | None) -> tuple[list[StreamEvent], OpenItem]:
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
        elif opened.kind not in CALLS:
            events.append(ResponseTextDoneEvent(
                type="response.output_text.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, text=opened.text, logprobs=[], sequence_number=self._next()))
        if opened.kind not in CALLS and opened.titler is None:
            events.append(ResponseContentPartDoneEvent(
                type="response.content_part.done", item_id=opened.item_id, output_index=opened.index,
                content_index=0, part=content_part(opened, opened.text), sequence_number=self._next()))
        item = output_item(opened, status)
        self._output[opened.index] = item
        events.append(ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=opened.index, sequence_number=self._next()))
        return events

    def _close_summary(self, opened: OpenItem) -> list[StreamEvent]:
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

    # -- the response ------------------------------------------------------------------------

    def _response_at(self, status: str, usage: Usage | None = None, error: ResponseError | None = None,
                     incomplete: IncompleteDetails | None = None) -> Response:
        return build_response(self.meta, status, self._output, usage, error, incomplete)

    def _next(self) -> int:
        self._seq += 1
        return self._seq - 1


