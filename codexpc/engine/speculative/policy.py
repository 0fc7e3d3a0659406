"""When a sequence drafts: its Harmony channel, its recent success, and the batch size.

The scheduler asks `Speculator.propose` once per decoding sequence and step and reports each
verify step's outcome to `Speculator.observe`; everything a sequence needs lives in its
`DraftState` (Sequence.draft_state). Three gates, cheapest first:

- the batch: above `max_batch` running sequences a step is compute-bound and verifying drafts
  costs more than it saves, so nobody drafts;
- the channel: with `channels` set, a sequence drafts only while its current Harmony message is
  in one of them. gpt-oss's analysis channel is new text (nothing to copy); its tool calls and
  final answer copy a lot. `ChannelTracker` follows the channel from the token ids
  (`<|channel|>` then the channel's name); a caller that knows better sets `state.channel`;
- the record: after `fail_limit` verify steps in a row that accepted nothing, the sequence rests
  for a cooldown (in its decode steps), doubled each time it fails again, reset by a success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.engine.speculative.drafter import SuffixIndex, propose


@dataclass(frozen=True)
class HarmonyIds:
    """The o200k_harmony ids the tracker reads (tests/test_speculative_policy.py checks them
    against openai-harmony's encoding)."""

    channel: int = 200005  # <|channel|>
    message: int = 200008  # <|message|>
    start: int = 200006  # <|start|>
    ends: frozenset[int] = frozenset({200007, 200012, 200002})  # <|end|>, <|call|>, <|return|>
    # A channel is named by the first token after <|channel|> ("commentary" is two tokens).
    names: tuple[tuple[int, str], ...] = ((35644, "analysis"), (12606, "commentary"), (17196, "final"))


class ChannelTracker:
    """The Harmony channel of the message being written, from the tokens as they come."""

    def __init__(self, ids: HarmonyIds) -> None:
        self.ids = ids
        self._names = dict(ids.names)
        self.channel: str | None = None  # None: outside a message body, or an unknown channel
        self._pending: str | None = None  # named in the header being written
        self._after_channel = False

    def feed(self, tokens: Sequence[int]) -> None:
        ids = self.ids
        for t in tokens:
            if self._after_channel:
                self._pending = self._names.get(t)
                self._after_channel = False
            if t == ids.channel:
                self._after_channel = True
                self.channel = None
            elif t == ids.message:
                self.channel = self._pending
            elif t == ids.start or t in ids.ends:
                self.channel = self._pending = None


@dataclass
class DraftState:
    """One sequence's drafting state (owned by the scheduler's thread)."""

    index: SuffixIndex
    tracker: ChannelTracker
    seen: int = 0  # tokens fed to the tracker
    failures: int = 0  # verify steps in a row that accepted nothing
    cooldown: int = 0  # decode steps left before drafting again
    backoff: int = 0  # the next cooldown's length (0: the config's first)
    drafted: int = 0  # totals, for stats and benches
    accepted: int = 0
    verify_steps: int = 0

    @property
    def channel(self) -> str | None:
        return self.tracker.channel

    @channel.setter
    def channel(self, value: str | None) -> None:
        self.tracker.channel = value


# Cuts a draft at the first token a sequence's grammar would reject (see Speculator.draft_filter).
DraftFilter = Callable[[object, list[int]], list[int]]


@dataclass
class Speculator:
    config: SpeculativeConfig
    ids: HarmonyIds = field(default_factory=HarmonyIds)
    # The constraint hook: given the sequence and its draft, the longest prefix its grammar
    # accepts from its current state. Constrained decoding sets it; a drafted token the grammar
    # rejects must never reach verification (it could be accepted at temperature > 0).
    draft_filter: DraftFilter | None = None
    drafted: int = 0  # totals over every sequence, for stats
    accepted: int = 0

    def new_state(self) -> DraftState:
        return DraftState(SuffixIndex(self.config.min_match), ChannelTracker(self.ids))

    def may_draft(self, state: DraftState | None, batch_size: int) -> bool:
        """Whether the sequence could draft at its next step (the runner does not run a step
        ahead for such a sequence: the step ahead would be dropped)."""
        c = self.config
        if state is None or not c.enabled or batch_size > c.max_batch or state.cooldown > 0:
            return False
        return c.channels is None or state.channel in c.channels

    def propose(self, seq: object, state: DraftState, tokens: Sequence[int], batch_size: int, limit: int) -> list[int]:
        """At most min(k, limit) tokens to verify after `tokens` (the sequence's tokens, the one
        about to be computed last). Ticks the cooldown: call once per decode step."""
        state.tracker.feed(tokens[state.seen :])
        state.seen = len(tokens)
        if state.cooldown > 0:
            state.cooldown -= 1
            return []
        if limit <= 0 or not self.may_draft(state, batch_size):
            return []
        c = self.config
        draft = propose(state.index, tokens, min(c.k, limit), c.max_match, c.max_candidates)
        if draft and self.draft_filter is not None:
            draft = self.draft_filter(seq, draft)
        return draft

    def observe(self, state: DraftState, drafted: int, accepted: int) -> None:
        """One verify step's outcome: `accepted` of `drafted` tokens were the model's."""
        state.drafted += drafted
        state.accepted += accepted
        self.drafted += drafted
        self.accepted += accepted
        state.verify_steps += 1
        if accepted > 0:
            state.failures = 0
            state.backoff = 0
            return
        state.failures += 1
        if state.failures >= self.config.fail_limit:
            c = self.config
            state.cooldown = state.backoff or c.cooldown_steps
            state.backoff = min(state.cooldown * 2, c.max_cooldown_steps)
            state.failures = 0
