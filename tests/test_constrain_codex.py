"""Codex's real turn-1 request, constrained: sampled completions are always well-formed Harmony.

The bulk (192 completions) come from the RANDOM-LOGITS TEST DOUBLE in constrain_support, sampled
at temperature 1 through the engine's own masked sampler (constraint_bitmask + sample_rows) in
batches; test_constrain_engine.py samples 8 more with the paged engine on the tiny random
checkpoint. Every completion goes through the real HarmonyDecoder."""

from __future__ import annotations

import collections
from typing import Any

from constrain_support import sample_completions, tokenizer
from openai_harmony import HarmonyEncoding

from codexpc.constrain import constraint_for
from codexpc.harmony.decoder import HarmonyDecoder
from codexpc.harmony.events import DecodeError, Stop, ToolArgumentsDone
from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.harmony.tools import ToolRegistry

MAX_TOKENS = 160


def decode(encoding: HarmonyEncoding, registry: ToolRegistry, tokens: list[int], limit: int) -> list[Any]:
    """Every event of one completion, with the engine's finish: "stop" or "length"."""
    decoder = HarmonyDecoder(encoding, registry)
    events = [e for t in tokens for e in decoder.feed(t)]
    if not decoder.stopped:
        assert len(tokens) == limit, "a completion ended before its limit without a stop token"
        events += decoder.finish("length")
    return events


def check_well_formed(events: list[Any]) -> str:
    """The completion's stop reason; fails on a DecodeError or an invalid tool call."""
    errors = [e for e in events if isinstance(e, DecodeError)]
    assert not errors, errors
    for call in (e for e in events if isinstance(e, ToolArgumentsDone)):
        assert call.error is None, (call.recipient, call.arguments, call.error)
    stops = [e for e in events if isinstance(e, Stop)]
    assert len(stops) == 1
    return stops[0].reason


def test_192_random_completions_to_codex_turn1_are_well_formed_harmony(
        encoding: HarmonyEncoding, codex_turn1_request: dict[str, Any]) -> None:
    rendered = render_responses(codex_turn1_request, encoding, RenderOptions(current_date="2026-01-01"))
    assert encoding.decode(rendered.tokens[-2:]) == "<|start|>assistant"  # where generation starts
    constraint = constraint_for(rendered.registry, None, tokenizer())
    completions = sample_completions(constraint, 192, MAX_TOKENS, seed=13, batch=48)
    reasons = collections.Counter(check_well_formed(decode(encoding, rendered.registry, c, MAX_TOKENS))
                                  for c in completions)
    # Most end as Harmony allows (a tool call or a final answer); the rest hit the token limit.
    assert reasons["call"] > 20 and reasons["return"] > 20, reasons
    assert set(reasons) <= {"call", "return", "length"}, reasons
    called = collections.Counter(e.recipient for c in completions
                                 for e in decode(encoding, rendered.registry, c, MAX_TOKENS)
                                 if isinstance(e, ToolArgumentsDone))
    assert set(called) <= set(rendered.registry.names())
    assert len(called) >= 5, called  # the calls spread over the offered tools
