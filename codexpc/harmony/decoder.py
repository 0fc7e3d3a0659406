"""Sampled token ids to typed events: a push parser over openai-harmony's StreamableParser.

Completion options are enforced here, not by callers: final-only deltas, guarded stop, and
validation of tool calls against the request's registry. Nothing the model writes makes
feed() or finish() raise; bad output becomes a DecodeError then Stop("error").
"""

from __future__ import annotations

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import FinishReason
from codexpc.harmony.encoding import CALL, RETURN
from codexpc.harmony.events import Event
from codexpc.harmony.tools import ToolRegistry


def stop_token_ids(encoding: HarmonyEncoding) -> frozenset[int]:
    """The tokens at which the engine stops sampling: `<|return|>` and `<|call|>`."""
    return frozenset(encoding.stop_tokens_for_assistant_actions()) | {RETURN, CALL}


class HarmonyDecoder:
    """Feed one sampled token at a time; after a Stop, feed() and finish() return []."""

    def __init__(self, encoding: HarmonyEncoding, registry: ToolRegistry) -> None:
        self._encoding = encoding
        self._registry = registry

    def feed(self, token_id: int) -> list[Event]:
        raise NotImplementedError

    def finish(self, reason: FinishReason) -> list[Event]:
        raise NotImplementedError
