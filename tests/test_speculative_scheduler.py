"""The scheduler with drafts, no model: exact block counts through a verify step and its rollback."""

from __future__ import annotations

from codexpc.engine.api import SamplingParams
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
from codexpc.engine.paged.sequence import Sequence
from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.engine.speculative.policy import Speculator

BS = 4
LOOP = [1, 2, 3, 1, 2, 3, 1]  # drafts [2, 3, 1, 2] at k = 4, min_match 2


def setup(num_blocks: int = 16, k: int = 4, max_new: int = 100) -> tuple[Scheduler, BlockManager, Sequence]:
    blocks = BlockManager(num_blocks, BS)
    spec = Speculator(SpeculativeConfig(enabled=True, k=k, min_match=2))
    sched = Scheduler(SchedulerConfig(4, 64, 1000), blocks, spec)
    seq = Sequence("a", list(LOOP), len(LOOP), SamplingParams(temperature=0.0, max_new_tokens=max_new))
    sched.add(seq)
    out = sched.schedule()  # the prompt: 7 tokens, 2 blocks
    assert [s.draft for s in out.scheduled] == [[]]
    sched.update(out, {"a": 2})  # token 2 sampled: 8 tokens, 7 with KV
    return sched, blocks, seq


def test_a_decoding_sequence_is_scheduled_with_its_draft() -> None:
    sched, blocks, seq = setup()
    out = sched.schedule()
    (s,) = out.scheduled
    assert s.draft == [3, 1, 2, 3] and s.num_new_tokens == 5 and s.samples
    assert len(seq.block_table) == 3  # positions 7..11 need a third block
    assert out.may_draft_next


def test_a_rejection_rolls_back_across_a_block_boundary() -> None:
    sched, blocks, seq = setup()
    out = sched.schedule()
    used = blocks.num_used
    # The model keeps 3 and says 9 where the draft said 1: positions 7 (token 2) and 8 (3) have
    # KV; 9..11 were rejected. 10 tokens now; block 2 (positions 8..11) is still needed.
    tokens = [3, 9]
    finished = sched.update(out, {}, {"a": tokens})
    assert finished == [] and tokens == [3, 9]
    assert seq.token_ids == LOOP + [2, 3, 9] and seq.num_computed_tokens == 9
    assert blocks.num_used == used and len(seq.block_table) == 3
    assert blocks.num_cached == 2  # blocks 0 and 1 (positions 0..7) are full of real KV
    assert seq.draft_state is not None and (seq.draft_state.drafted, seq.draft_state.accepted) == (4, 1)


def test_blocks_wholly_past_the_tokens_go_back_and_nothing_rejected_is_cached() -> None:
    sched, blocks, seq = setup()
    seq_before = len(seq.block_table)
    out = sched.schedule()
    assert len(seq.block_table) == seq_before + 1
    sched.update(out, {}, {"a": [5]})  # nothing accepted: 9 tokens, block 2 holds position 8 only
    assert seq.num_computed_tokens == 8 and len(seq.block_table) == 3 and blocks.num_cached == 2
    # A draft of 4 at 9 tokens reaches position 12: a fourth block, released when all fail.
    seq.token_ids[-3:] = [1, 2, 3]  # make the suffix recur again (test-only edit of the tokens)
    out = sched.schedule()
    (s,) = out.scheduled
    assert s.num_new_tokens == 1 + len(s.draft) and len(s.draft) == 4 and len(seq.block_table) == 4
    sched.update(out, {}, {"a": [7]})
    assert len(seq.block_table) == 3 and blocks.num_used == 3 and blocks.num_cached == 2


def test_a_stop_token_among_the_accepted_ends_the_sequence_there() -> None:
    sched, blocks, seq = setup()
    seq.params = SamplingParams(temperature=0.0, max_new_tokens=100, stop_token_ids=frozenset({1}))
    out = sched.schedule()
    tokens = [3, 1, 2, 3, 6]  # all four accepted, but the second is the stop token
    assert sched.update(out, {}, {"a": tokens}) == [seq]
    assert tokens == [3, 1] and seq.token_ids == LOOP + [2, 3, 1] and seq.finish_reason == "stop"
    assert blocks.num_used == 0 and blocks.num_cached == 2  # freed; its two full blocks stay cached


def test_the_draft_fits_max_new_tokens_and_never_preempts() -> None:
    sched, _, seq = setup(max_new=3)  # one token out, two left: a draft of one at most
    (s,) = sched.schedule().scheduled
    assert s.draft == [3]
    sched2, blocks2, seq2 = setup(num_blocks=2)  # the prompt's 2 blocks: no room for a third
    out = sched2.schedule()
    assert [(s.draft, s.num_new_tokens) for s in out.scheduled] == [([], 1)]
    assert not out.preempted


def test_without_a_speculator_nothing_drafts() -> None:
    blocks = BlockManager(16, BS)
    sched = Scheduler(SchedulerConfig(4, 64, 1000), blocks)
    seq = Sequence("a", list(LOOP), len(LOOP), SamplingParams(temperature=0.0))
    sched.add(seq)
    sched.update(sched.schedule(), {"a": 2})
    out = sched.schedule()
    assert out.num_drafted == 0 and not out.may_draft_next and seq.draft_state is None
