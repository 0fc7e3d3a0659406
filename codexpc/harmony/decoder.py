"""Sampled token ids to typed events: a push parser over openai-harmony's StreamableParser.

Completion options are enforced here, not by callers:
- final-only deltas: only the final channel is answer text; analysis is reasoning; commentary
  with no recipient is a user-visible preamble; a message with a recipient is a tool call;
- guarded stop: decoding ends only at `<|return|>` closing a final message or `<|call|>`
  closing a tool call; `<|end|>` ends any other message and decoding goes on;
- tool calls are checked against the request's registry when their arguments are done;
- a call to a custom (freeform) tool of the registry streams its raw body as CustomToolInputDelta
  and ends with CustomToolInputDone (no JSON: the model writes it with content type `code`).

StreamableParser alone is lenient (a stop token inside a header becomes part of the channel
name, stray special tokens become content text), so the decoder tracks where it is in the
message grammar itself and hands the parser only tokens that are legal there. Nothing the
model writes makes feed() or finish() raise: bad output becomes a DecodeError, then
Stop("error").

MessageDone (and ToolArgumentsDone) come only for a message that a proper token closed. A
message cut short (bad output, a length or context limit, the engine stopping) gets no
MessageDone: its deltas so far stand, and the Stop that follows says why it ended, so a
consumer closes it as incomplete and never mistakes half a tool call for a whole one.
After a Stop the caller should cancel the generation; feed() and finish() then return [].
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass, field

from openai_harmony import HarmonyEncoding, HarmonyError, Role, StreamableParser

from codexpc.engine.api import FinishReason
from codexpc.harmony.encoding import CALL, END, RETURN
from codexpc.harmony.events import (
    CustomToolInputDelta,
    CustomToolInputDone,
    DecodeError,
    Event,
    MessageDone,
    MessageKind,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDelta,
    ToolArgumentsDone,
)
from codexpc.harmony.tools import ToolRegistry, split_recipient

log = logging.getLogger(__name__)

START, CHANNEL, CONSTRAIN, MESSAGE = 200006, 200005, 200003, 200008
FIRST_SPECIAL, LAST_ID = 199998, 201088  # o200k_harmony: ids above 199997 are special tokens
MAX_HEADER_TOKENS = 256  # a header is a channel, a recipient and a content type: a few dozen tokens
_HEADER_TOKENS = frozenset({CHANNEL, CONSTRAIN, MESSAGE})
_CLOSERS = frozenset({END, RETURN, CALL})
_KINDS: dict[str, MessageKind] = {"analysis": "reasoning", "commentary": "preamble", "final": "final"}
_CALLS: frozenset[MessageKind] = frozenset({"tool_call", "custom_tool_call"})


def stop_token_ids(encoding: HarmonyEncoding) -> frozenset[int]:
    """The tokens at which the engine stops sampling: `<|return|>` and `<|call|>`."""
    return frozenset(encoding.stop_tokens_for_assistant_actions()) | {RETURN, CALL}


@functools.cache
def _special_ids(encoding: HarmonyEncoding) -> frozenset[int]:
    return frozenset(t for t in range(FIRST_SPECIAL, LAST_ID + 1) if encoding.is_special_token(t))


class _State(enum.Enum):
    HEADER = "header"  # after <|start|>: role, channel, recipient, content type
    CONTENT = "content"  # after <|message|>
    BETWEEN = "between"  # after <|end|>: only <|start|> may follow
    STOPPED = "stopped"


class _Malformed(Exception):
    """The model's output broke the Harmony grammar; becomes a DecodeError."""


@dataclass
class _Open:
    """The message being decoded."""

    kind: MessageKind
    channel: str
    recipient: str | None
    parts: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.parts)


class HarmonyDecoder:
    """Feed one sampled token at a time; after a Stop, feed() and finish() return []."""

    def __init__(self, encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
        self._encoding = encoding
        self._registry = registry
        self._specials = _special_ids(encoding)
        self._parser = StreamableParser(encoding, Role.ASSISTANT)
        self._state = _State.HEADER  # the prompt ends with `<|start|>assistant`
        self._header_tokens = 0
        self._open: _Open | None = None
        self._index = -1  # index in the completion of the token being fed

    @property
    def stopped(self) -> bool:
        return self._state is _State.STOPPED

    def feed(self, token_id: int) -> list[Event]:
        if self._state is _State.CONTENT and 0 <= token_id < FIRST_SPECIAL:  # the per-token path: text
            self._index += 1
            parser = self._parser
            try:
                parser.process(token_id)
            except HarmonyError as exc:
                return self._fail(f"openai-harmony could not parse token {token_id}: {exc}", self._index)
            delta = parser.last_content_delta
            return [self._delta(delta)] if delta else []
        if self._state is _State.STOPPED:
            return []
        self._index += 1
        try:
            return self._step(token_id)
        except _Malformed as exc:
            return self._fail(str(exc), self._index)
        except HarmonyError as exc:  # what the grammar checks above did not foresee
            return self._fail(f"openai-harmony could not parse token {token_id}: {exc}", self._index)

    def finish(self, reason: FinishReason) -> list[Event]:
        """The engine's stream ended for `reason`; closes whatever is still open."""
        if self._state is _State.STOPPED:
            return []
        if reason == "length" or reason == "context":
            self._open, self._state = None, _State.STOPPED
            return [Stop(reason)]
        why = {
            "stop": "the completion ended without <|return|> or <|call|> closing a message",
            "cancelled": "the generation was cancelled",
            "error": "the engine failed during generation",
        }.get(reason, f"the generation ended ({reason})")
        return self._fail(why, -1)

    def _step(self, token: int) -> list[Event]:
        if not 0 <= token <= LAST_ID:
            raise _Malformed(f"token id {token} is outside the vocabulary")
        special = token in self._specials
        if self._state is _State.HEADER:
            return self._header(token, special)
        if self._state is _State.CONTENT:
            if token in _CLOSERS:
                self._parser.process(token)
                return self._end_message(token)
            if special:
                raise _Malformed(f"stray {self._name(token)} inside a message")
            self._parser.process(token)
            delta = self._parser.last_content_delta
            return [self._delta(delta)] if delta else []
        if token != START:
            raise _Malformed(f"stray {self._name(token)} between messages, where <|start|> must come")
        self._parser.process(token)
        self._state, self._header_tokens = _State.HEADER, 0
        return []

    def _header(self, token: int, special: bool) -> list[Event]:
        if special and token not in _HEADER_TOKENS:
            raise _Malformed(f"{self._name(token)} inside a message header")
        self._header_tokens += 1
        if self._header_tokens > MAX_HEADER_TOKENS:
            raise _Malformed(f"a message header longer than {MAX_HEADER_TOKENS} tokens")
        self._parser.process(token)
        return [self._start_message()] if token == MESSAGE else []

    def _start_message(self) -> MessageStarted:
        parser = self._parser
        role, channel, recipient = parser.current_role, parser.current_channel, parser.current_recipient
        if role is not Role.ASSISTANT:
            raise _Malformed(f"a message from {role.value if role else 'nobody'!r} in the model's output")
        if channel not in _KINDS:
            raise _Malformed(f"malformed header: channel {channel!r} is not analysis, commentary or final")
        if recipient is not None and channel == "final":
            raise _Malformed(f"malformed header: a final message addressed to {recipient!r}")
        kind: MessageKind = _KINDS[channel]
        if recipient is not None:
            kind = "custom_tool_call" if self._registry.is_custom(recipient) else "tool_call"
        self._open = _Open(kind, channel, recipient)
        self._state = _State.CONTENT
        return MessageStarted(kind, channel, recipient, parser.current_content_type)

    def _delta(self, text: str) -> Event:
        message = self._open
        assert message is not None, "content outside a message"
        message.parts.append(text)
        if message.kind == "custom_tool_call":
            assert message.recipient is not None
            return CustomToolInputDelta(message.recipient, text)
        if message.recipient is not None:
            return ToolArgumentsDelta(message.recipient, text)
        assert message.kind != "tool_call" and message.kind != "custom_tool_call"
        return TextDelta(message.kind, message.channel, text)

    def _end_message(self, token: int) -> list[Event]:
        """`token` (<|end|>, <|return|> or <|call|>) closed the open message."""
        message = self._open
        assert message is not None, "a message end outside a message"
        events: list[Event] = []
        tail = self._tail(message)
        if tail:
            events.append(self._delta(tail))
        if token == END and message.kind in _CALLS:
            return events + self._fail("a tool call ended with <|end|> instead of <|call|>", self._index)
        if token == RETURN and message.kind != "final":
            return events + self._fail(f"<|return|> closed a {message.kind} message, not a final answer", self._index)
        if token == CALL and message.kind not in _CALLS:
            return events + self._fail("<|call|> closed a message with no recipient", self._index)
        if token == CALL:
            events.append(self._input_done(message) if message.kind == "custom_tool_call"
                          else self._arguments_done(message))
        events.append(MessageDone(message.kind, message.channel, message.recipient, message.text()))
        self._open = None
        if token == END:
            self._state = _State.BETWEEN
        else:
            self._state = _State.STOPPED
            events.append(Stop("return" if token == RETURN else "call"))
        return events

    def _tail(self, message: _Open) -> str:
        """Text the parser held back and only gives out with the whole message.

        StreamableParser withholds the bytes of an unfinished UTF-8 character; when a message
        ends on such bytes they appear (as U+FFFD) only in the finished message.
        """
        messages = self._parser.messages
        if not messages:  # cannot happen after a closer; never worth an exception
            return ""
        whole = "".join(getattr(part, "text", "") for part in messages[-1].content)
        sent = message.text()
        if whole.startswith(sent):
            return whole[len(sent) :]
        log.warning("decoder deltas diverged from openai-harmony's message (%r vs %r)", sent, whole)
        return ""

    def _arguments_done(self, message: _Open) -> ToolArgumentsDone:
        assert message.recipient is not None
        arguments = message.text()
        namespace, name = split_recipient(message.recipient)
        error = self._registry.validate(message.recipient, arguments)
        return ToolArgumentsDone(message.recipient, namespace, name, arguments, error)

    def _input_done(self, message: _Open) -> CustomToolInputDone:
        assert message.recipient is not None
        namespace, name = split_recipient(message.recipient)
        return CustomToolInputDone(message.recipient, namespace, name, message.text(), None)

    def _fail(self, why: str, index: int) -> list[Event]:
        """Ends decoding; an open message stays without MessageDone (see the module's docstring)."""
        log.info("model output broke Harmony at token %d: %s", index, why)
        self._open, self._state = None, _State.STOPPED
        return [DecodeError(why, index), Stop("error")]

    def _name(self, token: int) -> str:
        if token in self._specials:
            return self._encoding.decode([token])
        return f"token {token}"
