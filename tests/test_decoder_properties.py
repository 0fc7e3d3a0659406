"""Properties of the decoder: what it accepts agrees with openai-harmony's own parser, and no
token stream, however broken, makes it raise."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_harmony import Role

from codexpc.engine.api import FinishReason
from codexpc.harmony.decoder import HarmonyDecoder
from codexpc.harmony.encoding import CALL, END, RETURN, load_encoding
from codexpc.harmony.events import (
    DecodeError,
    Event,
    MessageDone,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDelta,
)
from codexpc.harmony.tools import ToolRegistry, registry_from_responses

ENCODING = load_encoding()
REGISTRY = registry_from_responses([{"type": "function", "name": "shell"}])[0]
START, CHANNEL, CONSTRAIN, MESSAGE = 200006, 200005, 200003, 200008
# Modest counts: CI runs the whole suite on 2 cores.
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADERS = {
    "analysis": "<|channel|>analysis<|message|>",
    "commentary": "<|channel|>commentary<|message|>",
    "final": "<|channel|>final<|message|>",
    "tool_call": "<|channel|>commentary to=functions.shell <|constrain|>json<|message|>",
}


def _encode(text: str) -> list[int]:
    return ENCODING.encode(text, allowed_special="all")


def _ordinary(text: str) -> list[int]:
    """Model text as ordinary tokens: special-token spellings in it are just text."""
    return ENCODING.encode(text, allowed_special=set(), disallowed_special=())


# Content: real text (any Unicode), or any ordinary token ids, which may split or break UTF-8.
content = st.one_of(
    st.text(max_size=40).map(_ordinary),
    st.lists(st.integers(0, 199_997), max_size=12),
)


@st.composite
def accepted_streams(draw: st.DrawFn) -> list[int]:
    """Well-formed completions: messages closed by <|end|>, then a final answer or a tool call."""
    tokens: list[int] = []
    for channel in draw(st.lists(st.sampled_from(["analysis", "commentary", "final"]), max_size=3)):
        tokens += _encode(HEADERS[channel]) + draw(content) + [END] + _encode("<|start|>assistant")
    last = draw(st.sampled_from(["final", "tool_call"]))
    return tokens + _encode(HEADERS[last]) + draw(content) + [RETURN if last == "final" else CALL]


def run(tokens: list[int], reason: FinishReason = "stop", registry: ToolRegistry = REGISTRY) -> list[Event]:
    decoder = HarmonyDecoder(ENCODING, registry)
    events = [event for token in tokens for event in decoder.feed(token)]
    return events + decoder.finish(reason)


def per_message_text(events: list[Event]) -> list[tuple[str, str]]:
    """(concatenated deltas, MessageDone text) for each message, in order."""
    out: list[tuple[str, str]] = []
    pieces: list[str] = []
    for event in events:
        if isinstance(event, MessageStarted):
            pieces = []
        elif isinstance(event, TextDelta | ToolArgumentsDelta):
            pieces.append(event.text)
        elif isinstance(event, MessageDone):
            out.append(("".join(pieces), event.text))
    return out


def assert_agrees_with_harmony(tokens: list[int], events: list[Event]) -> None:
    parsed = ENCODING.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    expected = ["".join(getattr(p, "text", "") for p in m.content) for m in parsed]
    assert per_message_text(events) == [(text, text) for text in expected]


@SETTINGS
@given(accepted_streams())
def test_accepted_streams_agree_with_openai_harmony(tokens: list[int]) -> None:
    events = run(tokens)
    assert not [e for e in events if isinstance(e, DecodeError)]
    assert events[-1] in (Stop("return"), Stop("call"))
    assert_agrees_with_harmony(tokens, events)


# Random streams: Harmony's structural tokens, header words and arbitrary ids, mixed so that
# the decoder reaches every state and not only the first header.
_PIECES = [
    [START], [CHANNEL], [MESSAGE], [CONSTRAIN], [END], [RETURN], [CALL],
    _encode("assistant"), _encode("analysis"), _encode("final"), _encode("commentary"), _encode("user"),
    _encode(" to=functions.shell"), _encode(" to=python"), _encode("json"), _encode("{}"),
    *[_encode(h) for h in HEADERS.values()],
]
# A whole message, closed by any closer: enough of these reach accepted stops too.
message_chunk = st.builds(
    lambda channel, body, closer: _encode(HEADERS[channel]) + body + [closer] + _encode("<|start|>assistant"),
    st.sampled_from(list(HEADERS)),
    content,
    st.sampled_from([END, END, RETURN, CALL]),
)
_mixed = st.lists(
    st.one_of(
        message_chunk,
        st.sampled_from(_PIECES),
        st.lists(st.integers(0, 199_997), min_size=1, max_size=4),
        st.integers(199_998, 201_088).map(lambda t: [t]),
        st.integers(-(2**40), 2**40).map(lambda t: [t]),
    ),
    max_size=12,
)
token_soup = st.builds(
    lambda head, tail: [t for chunk in head + tail for t in chunk], st.lists(message_chunk, max_size=3), _mixed
)


@SETTINGS
@given(token_soup, st.sampled_from(get_args(FinishReason)))
def test_random_streams_never_raise(tokens: list[int], reason: FinishReason) -> None:
    events = run(tokens, reason)
    assert sum(isinstance(e, Stop) for e in events) == 1 and isinstance(events[-1], Stop)
    started = sum(isinstance(e, MessageStarted) for e in events)
    done = sum(isinstance(e, MessageDone) for e in events)
    # Only a message cut short stays without MessageDone.
    assert done == started or (done == started - 1 and events[-1] not in (Stop("return"), Stop("call")))
    if events[-1] in (Stop("return"), Stop("call")):
        consumed = _tokens_until_stop(tokens)
        assert_agrees_with_harmony(consumed, events)


def _tokens_until_stop(tokens: list[int]) -> list[int]:
    """The prefix the decoder consumed: everything up to its first accepted stop token."""
    for i, token in enumerate(tokens):
        if token in (RETURN, CALL):
            events = run(tokens[: i + 1])
            if events[-1] in (Stop("return"), Stop("call")):
                return tokens[: i + 1]
    pytest.fail("the decoder stopped without a stop token")
