"""When a sequence drafts: the Harmony channel it is in, its cooldown after failures, the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from codexpc.engine.speculative.config import COPYING_CHANNELS, SpeculativeConfig
from codexpc.engine.speculative.policy import ChannelTracker, HarmonyIds, Speculator

if TYPE_CHECKING:
    from openai_harmony import HarmonyEncoding

LOOP = [1, 2, 3, 1, 2, 3, 1, 2]  # drafts [3, 1, 2, ...] whenever drafting is allowed


def spec(**kw: object) -> Speculator:
    return Speculator(SpeculativeConfig(enabled=True, min_match=2, **kw))  # type: ignore[arg-type]


def test_the_harmony_ids_are_those_of_the_real_encoding(encoding: HarmonyEncoding) -> None:
    ids = HarmonyIds()

    def one(text: str) -> int:
        tokens = encoding.encode(text, allowed_special="all")
        return int(tokens[0])

    assert ids.channel == one("<|channel|>") and ids.message == one("<|message|>") and ids.start == one("<|start|>")
    assert ids.ends == {one("<|end|>"), one("<|call|>"), one("<|return|>")}
    assert dict(ids.names) == {one("analysis"): "analysis", one("commentary"): "commentary", one("final"): "final"}


def test_the_tracker_follows_the_channels_of_a_real_completion(encoding: HarmonyEncoding) -> None:
    text = ("<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary to=functions.shell"
            "<|constrain|>json<|message|>{\"cmd\": 1}<|call|>")
    tokens = encoding.encode(text, allowed_special="all")
    tracker = ChannelTracker(HarmonyIds())
    seen: list[str | None] = []
    for t in tokens:
        tracker.feed([t])
        seen.append(tracker.channel)
    message = [i for i, t in enumerate(tokens) if t == HarmonyIds().message]
    assert seen[message[0]] == "analysis" and seen[message[0] - 1] is None  # the header is no body
    assert seen[message[1]] == "commentary" and seen[message[1] + 1] == "commentary"
    assert seen[-1] is None  # <|call|> ends the message
    assert "final" not in seen


def test_channel_gating_drafts_only_in_the_chosen_channels() -> None:
    s = spec(channels=COPYING_CHANNELS)
    ids = HarmonyIds()
    analysis = [ids.channel, 35644, ids.message, *LOOP]
    state = s.new_state()
    assert s.propose(None, state, analysis, 1, 8) == []
    final = analysis + [200007, ids.start, 7, ids.channel, 17196, ids.message, 4, 5, 6, 4, 5]
    assert s.propose(None, state, final, 1, 4) == [6, 4, 5, 6]
    state.channel = "analysis"  # the engine may set it itself
    assert s.propose(None, state, final, 1, 4) == []


@pytest.mark.parametrize("batch, limit, expected", [(8, 8, [3, 1, 2, 3]), (9, 8, []), (1, 2, [3, 1]), (1, 0, [])])
def test_batch_threshold_and_limit(batch: int, limit: int, expected: list[int]) -> None:
    s = spec(k=4, max_batch=8)
    assert s.propose(None, s.new_state(), LOOP, batch, limit) == expected


def test_failures_in_a_row_start_a_cooldown_that_doubles_and_a_success_resets_it() -> None:
    s = spec(fail_limit=2, cooldown_steps=3, max_cooldown_steps=5)
    state = s.new_state()
    s.observe(state, 4, 0)
    assert s.may_draft(state, 1)
    s.observe(state, 4, 0)
    assert state.cooldown == 3 and not s.may_draft(state, 1)
    assert [s.propose(None, state, LOOP, 1, 8) for _ in range(3)] == [[], [], []]  # one tick a step
    assert s.may_draft(state, 1) and s.propose(None, state, LOOP, 1, 2) == [3, 1]
    s.observe(state, 2, 0)
    s.observe(state, 2, 0)
    assert state.cooldown == 5  # 3 doubled, capped at 5
    state.cooldown = 0
    s.observe(state, 2, 1)
    s.observe(state, 2, 0)
    s.observe(state, 2, 0)
    assert state.cooldown == 3  # the success reset the backoff
    assert (state.drafted, state.accepted, state.verify_steps) == (18, 1, 7)
    assert (s.drafted, s.accepted) == (18, 1)


def test_disabled_or_stateless_sequences_never_draft() -> None:
    off = Speculator(SpeculativeConfig(enabled=False))
    assert not off.may_draft(off.new_state(), 1)
    assert off.propose(None, off.new_state(), LOOP, 1, 8) == []
    assert not spec().may_draft(None, 1)


def test_the_constraint_hook_cuts_the_draft() -> None:
    s = spec()
    s.draft_filter = lambda seq, draft: [t for t in draft[: draft.index(2)]] if 2 in draft else draft
    assert s.propose(None, s.new_state(), LOOP, 1, 4) == [3, 1]


@pytest.mark.parametrize("bad", [{"k": 0}, {"min_match": 0}, {"max_match": 1, "min_match": 2}, {"max_batch": 0},
                                 {"cooldown_steps": 0}, {"cooldown_steps": 9, "max_cooldown_steps": 8}])
def test_bad_settings_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="speculative"):
        SpeculativeConfig(**bad)  # type: ignore[arg-type]
