"""Harmony decoder events -> Chat Completions chunks (and the non-streaming ChatCompletion).

Reasoning goes in the delta's `reasoning_content` (the field local OpenAI-compatible servers
use for chain of thought); preambles and final text go in `content`; tool calls in `tool_calls`.
A failure in the middle of a stream (a refused tool call, broken Harmony) can only be told as
an `{"error": ...}` frame, as the OpenAI API does; without streaming it is the reply itself,
with the status of server/errors.py's FAILURE_STATUS (the model's broken output is a 502, not
a 500: the daemon is fine, and a retry samples again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails

from codexpc.harmony.events import (
    DecodeError,
    Event,
    MessageStarted,
    Stop,
    StopReason,
    TextDelta,
    ToolArgumentsDelta,
    ToolArgumentsDone,
)
from codexpc.harmony.tools import split_recipient
from codexpc.server.errors import Failure, engine_failure, failure_body, tool_failure
from codexpc.server.ids import new_id
from codexpc.server.sse import Delta, json_string
from codexpc.server.usage import Usage

Chunk = ChatCompletionChunk | Delta  # a Delta: a per-token chunk as JSON from a template


@dataclass
class _Call:
    id: str
    name: str
    arguments: str = ""


@dataclass
class ChatStream:
    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))
    content: str = ""
    reasoning: str = ""
    calls: list[_Call] = field(default_factory=list)
    stop: StopReason | None = None
    failure: Failure | None = None

    def __post_init__(self) -> None:
        # A text chunk's JSON around its delta, keys in the order pydantic writes them.
        head = f'{{"id":{json_string(self.id)},"choices":[{{"delta":{{'
        self._heads = {"reasoning": f'{head}"reasoning_content":', "text": f'{head}"content":',
                       "call": f'{head}"tool_calls":[{{"index":'}
        self._tail = (f'}},"index":0,"finish_reason":null}}],"created":{self.created},'
                      f'"model":{json_string(self.model)},"object":"chat.completion.chunk"}}')

    def start(self) -> list[Chunk]:
        return [self._chunk(ChoiceDelta(role="assistant", content=""))]

    def feed(self, event: Event) -> list[Chunk]:
        if self.failure is not None:
            return []
        if isinstance(event, TextDelta):
            return [self._text(event)]
        if isinstance(event, MessageStarted) and event.kind == "tool_call":
            return [self._open_call(event.recipient or "")]
        if isinstance(event, ToolArgumentsDelta):
            if not self.calls:
                self._open_call(event.recipient)
            self.calls[-1].arguments += event.text
            head = f'{self._heads["call"]}{len(self.calls) - 1},"function":{{"arguments":'
            return [Delta("", head, event.text, "}}]" + self._tail)]
        if isinstance(event, ToolArgumentsDone):
            if event.error is not None:
                self.failure = tool_failure(event.error)
                self.calls = self.calls[:-1]
            elif self.calls:
                self.calls[-1].arguments = event.arguments
            return []
        if isinstance(event, DecodeError):
            self.failure = Failure("invalid_model_output", f"the model's output broke Harmony: {event.message}")
        if isinstance(event, Stop):
            self.stop = event.reason
        return []

    def finish_reason(self) -> str:
        if self.stop == "call" and self.calls:
            return "tool_calls"
        if self.stop in ("length", "context"):
            return "length"
        return "stop"

    def close(self, usage: Usage, engine_error: str | None, include_usage: bool) -> list[Chunk]:
        """The last chunks: finish_reason, then usage when asked (stream_options.include_usage)."""
        if engine_error is not None:  # the engine's own failure explains any decode error it caused
            self.failure = engine_failure(engine_error)
        if self.stop in ("error", None) and self.failure is None:
            self.failure = Failure("invalid_model_output", "the model's output ended without a valid stop")
        if self.failure is not None:
            return []
        chunks: list[Chunk] = [self._chunk(ChoiceDelta(), finish_reason=self.finish_reason())]
        if include_usage:
            chunks.append(ChatCompletionChunk(id=self.id, object="chat.completion.chunk", created=self.created,
                                              model=self.model, choices=[], usage=_usage(usage)))
        return chunks

    def error(self) -> dict[str, Any]:
        """The failure as an OpenAI error object (the stream's last frame, or the reply's body)."""
        assert self.failure is not None, "close() found no failure"
        return failure_body(self.failure)

    def completion(self, usage: Usage) -> ChatCompletion:
        calls: list[Any] = [ChatCompletionMessageFunctionToolCall(id=c.id, type="function",
                                                       function=Function(name=c.name, arguments=c.arguments))
                 for c in self.calls]
        message = ChatCompletionMessage(role="assistant", content=self.content or None, tool_calls=calls or None,
                                        reasoning_content=self.reasoning or None)  # type: ignore[call-arg]
        choice = Choice(index=0, message=message, finish_reason=self.finish_reason(),  # type: ignore[arg-type]
                        logprobs=None)
        return ChatCompletion(id=self.id, object="chat.completion", created=self.created, model=self.model,
                              choices=[choice], usage=_usage(usage))

    def completion_body(self, usage: Usage) -> dict[str, Any]:
        """The ChatCompletion as JSON, as published: None fields left out, except those the
        published message and choice always carry (content, refusal, logprobs), which stay null."""
        body: dict[str, Any] = self.completion(usage).model_dump(mode="json", exclude_none=True, warnings=False)
        choice = body["choices"][0]
        choice.setdefault("logprobs", None)
        choice["message"].setdefault("content", None)
        choice["message"].setdefault("refusal", None)
        return body

    def _text(self, event: TextDelta) -> Chunk:
        if event.kind == "reasoning":
            self.reasoning += event.text
            return Delta("", self._heads["reasoning"], event.text, self._tail)
        self.content += event.text
        return Delta("", self._heads["text"], event.text, self._tail)

    def _open_call(self, recipient: str) -> Chunk:
        _, name = split_recipient(recipient)
        self.calls.append(_Call(new_id("call"), name))
        function = ChoiceDeltaToolCallFunction(name=name, arguments="")
        return self._call_delta(function, call_id=self.calls[-1].id)

    def _call_delta(self, function: ChoiceDeltaToolCallFunction, call_id: str | None = None) -> ChatCompletionChunk:
        extra: dict[str, Any] = {"id": call_id, "type": "function"} if call_id else {}
        call = ChoiceDeltaToolCall(index=len(self.calls) - 1, function=function, **extra)
        return self._chunk(ChoiceDelta(tool_calls=[call]))

    def _chunk(self, delta: ChoiceDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)  # type: ignore[arg-type]
        return ChatCompletionChunk(id=self.id, object="chat.completion.chunk", created=self.created,
                                   model=self.model, choices=[choice])


def _usage(usage: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.output_tokens,
        total_tokens=usage.prompt_tokens + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens))
