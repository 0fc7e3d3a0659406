"""The typed events the Harmony decoder emits: the event API the rest of codexpc consumes.

One sampled token yields zero or more of these. The server maps them onto Responses API
stream events (codexpc/server/responses_stream.py); nothing else interprets raw tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What a message is for the client:
# - "reasoning": the analysis channel (chain of thought);
# - "preamble": commentary with no recipient (user-visible text before a tool call);
# - "final": the final channel (the answer);
# - "tool_call": a message addressed to a function tool (`to=functions.NAME` or `to=NAMESPACE.NAME`);
# - "custom_tool_call": a message addressed to a custom (freeform) tool: its body is the raw input.
MessageKind = Literal["reasoning", "preamble", "final", "tool_call", "custom_tool_call"]

# Why decoding ended:
# - "return": `<|return|>` closed a well-formed final message;
# - "call": `<|call|>` closed a well-formed tool call;
# - "length": the engine hit the caller's cap on new tokens;
# - "context": the engine hit the model's context window;
# - "error": the model's output broke Harmony (see the DecodeError before it).
StopReason = Literal["return", "call", "length", "context", "error"]


@dataclass(frozen=True, slots=True)
class ToolCallError:
    """Why a tool call's arguments were refused; the server reports it as it is."""

    tool: str  # the recipient as the model wrote it, e.g. "functions.shell"
    path: str  # JSON path of the offending value ("$" for the whole document)
    message: str
    kind: Literal["unknown_tool", "invalid_json", "schema"]


@dataclass(frozen=True, slots=True)
class MessageStarted:
    kind: MessageKind
    channel: str | None
    recipient: str | None  # "functions.shell", or None
    content_type: str | None  # "<|constrain|>json" for tool calls, else usually None
    type: Literal["message_started"] = "message_started"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text of a reasoning, preamble or final message. Never splits a UTF-8 character."""

    kind: Literal["reasoning", "preamble", "final"]
    channel: str
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolArgumentsDelta:
    recipient: str
    text: str
    type: Literal["tool_arguments_delta"] = "tool_arguments_delta"


@dataclass(frozen=True, slots=True)
class ToolArgumentsDone:
    """A tool call's whole argument string and the outcome of validating it."""

    recipient: str  # as written by the model: "functions.NAME" or "NAMESPACE.NAME"
    namespace: str  # "functions" or the namespace's name
    name: str  # the tool's name inside its namespace
    arguments: str
    error: ToolCallError | None  # None: parsed and valid against the tool's schema
    type: Literal["tool_arguments_done"] = "tool_arguments_done"


@dataclass(frozen=True, slots=True)
class CustomToolInputDelta:
    """Raw input text of a custom tool's call, as the model writes it."""

    recipient: str
    text: str
    type: Literal["custom_tool_input_delta"] = "custom_tool_input_delta"


@dataclass(frozen=True, slots=True)
class CustomToolInputDone:
    """A custom tool call's whole input; `error` only when the tool was not offered."""

    recipient: str
    namespace: str
    name: str
    input: str
    error: ToolCallError | None
    type: Literal["custom_tool_input_done"] = "custom_tool_input_done"


@dataclass(frozen=True, slots=True)
class MessageDone:
    kind: MessageKind
    channel: str | None
    recipient: str | None
    text: str
    type: Literal["message_done"] = "message_done"


@dataclass(frozen=True, slots=True)
class DecodeError:
    """The model's output broke Harmony. What was decoded before it stays valid."""

    message: str
    token_index: int  # index in the completion of the offending token, -1 at finish()
    type: Literal["decode_error"] = "decode_error"


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    type: Literal["stop"] = "stop"


Event = (
    MessageStarted | TextDelta | ToolArgumentsDelta | ToolArgumentsDone | CustomToolInputDelta | CustomToolInputDone
    | MessageDone | DecodeError | Stop
)


def merge_deltas(events: list[Event]) -> list[Event]:
    """Consecutive deltas of one message as one delta."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if type(event) is TextDelta and type(last) is TextDelta and last.kind == event.kind:
            merged[-1] = TextDelta(event.kind, event.channel, last.text + event.text)
        elif (type(event) is ToolArgumentsDelta and type(last) is ToolArgumentsDelta
              and last.recipient == event.recipient):
            merged[-1] = ToolArgumentsDelta(event.recipient, last.text + event.text)
        else:
            merged.append(event)
    return merged
