"""Scheduler: chunked prefill, prefix hits, decode, budgets and preemption, on tiny blocks."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from codexpc.engine.api import SamplingParams
from codexpc.engine.model_config import GPT_OSS_20B, GPT_OSS_120B, TINY
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.cache_sizing import derive_budget, kv_bytes_per_token
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from codexpc.engine.paged.sequence import SeqStatus, Sequence

BS = 4


def make(num_blocks: int = 32, seqs: int = 4, tokens: int = 16, ctx: int = 1000) -> Scheduler:
    return Scheduler(SchedulerConfig(seqs, tokens, ctx), BlockManager(num_blocks, BS))


def seq(rid: str, n: int, max_new: int = 100, start: int = 0, stop: frozenset[int] = frozenset()) -> Sequence:
    params = SamplingParams(max_new_tokens=max_new, stop_token_ids=stop)
    return Sequence(rid, list(range(start, start + n)), n, params)


def plan(out: SchedulerOutput) -> list[tuple[str, int]]:
    return [(s.seq.request_id, s.num_new_tokens) for s in out.scheduled]


def step(sched: Scheduler, token: int = 7) -> tuple[list[tuple[str, int]], list[Sequence]]:
    """Schedule, pretend the model ran, sample `token` for every sequence that samples."""
    out = sched.schedule()
    sampled = {s.seq.request_id: token for s in out.scheduled if s.samples}
    return plan(out), sched.update(out, sampled)


def test_long_prompt_is_prefilled_in_chunks_then_decodes() -> None:
    sched = make(tokens=16)
    a = seq("a", 40)
    sched.add(a)
    assert step(sched)[0] == [("a", 16)]
    assert step(sched)[0] == [("a", 16)]
    assert a.num_tokens == 40  # nothing sampled mid-prompt
    assert step(sched)[0] == [("a", 8)]
    assert a.num_tokens == 41 and a.num_computed_tokens == 40
    assert step(sched)[0] == [("a", 1)]


def test_decodes_go_first_and_a_new_prompt_takes_the_rest_of_the_budget() -> None:
    sched = make(tokens=16)
    sched.add(a := seq("a", 3))
    step(sched)
    sched.add(b := seq("b", 30, start=100))
    assert step(sched)[0] == [("a", 1), ("b", 15)]
    assert step(sched)[0] == [("a", 1), ("b", 15)]
    assert step(sched)[0] == [("a", 1), ("b", 1)]  # b sampled after its prompt: a decode now
    assert a.num_output_tokens == 4 and b.num_output_tokens == 2


def test_max_num_seqs_holds_back_admission() -> None:
    sched = make(seqs=2)
    for rid in "abc":
        sched.add(seq(rid, 2, start=ord(rid) * 10))
    assert step(sched)[0] == [("a", 2), ("b", 2)]
    assert [s.request_id for s in sched.waiting] == ["c"]


def test_finish_on_stop_token_and_length_frees_blocks() -> None:
    sched = make()
    sched.add(a := seq("a", 5, stop=frozenset({9})))
    sched.add(b := seq("b", 5, max_new=2, start=50))
    _, done = step(sched, token=3)
    assert done == []
    _, done = step(sched, token=9)
    assert set(done) == {a, b}
    assert a.finish_reason == "stop" and a.token_ids[-1] == 9
    assert b.finish_reason == "length" and b.num_output_tokens == 2
    assert not sched.has_work() and sched.blocks.num_used == 0


def test_context_length_ends_a_generation() -> None:
    sched = make(ctx=6)
    sched.add(a := seq("a", 5))
    step(sched)
    assert a.finish_reason == "context" and a.num_tokens == 6


def test_second_turn_computes_only_new_tokens_and_reports_cached() -> None:
    sched = make()
    sched.add(first := seq("t1", 10, max_new=3))
    while sched.has_work():
        step(sched, token=5)
    assert first.token_ids == list(range(10)) + [5, 5, 5]
    # Next turn: the whole conversation again, then new tokens (13 old, 12 computed).
    turn2 = Sequence("t2", first.token_ids + [60, 61, 62], 16, SamplingParams(max_new_tokens=1))
    sched.add(turn2)
    assert step(sched)[0] == [("t2", 16 - 12)]
    assert turn2.num_cached_tokens == 12


def test_out_of_blocks_preempts_the_newest_and_it_recomputes_from_cache() -> None:
    # 6 blocks of 4: two 12-token prompts take 3 blocks each; the first decode that needs a
    # 4th block must preempt the newest sequence.
    sched = make(num_blocks=6, tokens=64)
    sched.add(a := seq("a", 12))
    sched.add(b := seq("b", 12, start=100))
    assert step(sched)[0] == [("a", 12), ("b", 12)]
    out = sched.schedule()
    assert plan(out) == [("a", 1)]
    assert out.preempted == [b] and b.status is SeqStatus.WAITING
    assert b.num_computed_tokens == 0 and b.block_table == []
    assert sched.num_preemptions == 1 and b.num_tokens == 13  # its sampled token is kept
    sched.update(out, {"a": 7})
    sched.finish(a)
    # a took b's last released block (LRU): b's first two blocks are still cached.
    out = sched.schedule()
    assert plan(out) == [("b", 13 - 8)]
    assert b.num_cached_tokens == 0  # the report counts the first admission only


def test_cancel_waiting_and_running_sequences() -> None:
    sched = make(seqs=1)
    sched.add(a := seq("a", 3))
    sched.add(b := seq("b", 3, start=10))
    step(sched)
    sched.finish(b)
    sched.finish(a)
    assert not sched.has_work() and sched.blocks.num_used == 0
    assert a.is_finished and b.is_finished


def test_budget_is_derived_from_free_memory() -> None:
    per_token = kv_bytes_per_token(TINY)
    assert per_token == 2 * 4 * 2 * 16 * 2
    budget = derive_budget(TINY, free_bytes=2**30, block_size=16)
    assert budget.bytes_per_block == per_token * 16
    assert budget.max_num_batched_tokens == 8192
    assert budget.max_num_seqs == 256
    assert budget.kv_bytes < 2**30
    assert budget.num_blocks > 1000
    assert derive_budget(TINY, free_bytes=2**29, block_size=16).num_blocks < budget.num_blocks


def test_budget_for_20b_fits_64_sequences_of_8k_on_an_80gb_card() -> None:
    # About 66 GiB free once the 13 GiB of weights are loaded.
    budget = derive_budget(GPT_OSS_20B, free_bytes=66 * 2**30, block_size=16)
    assert budget.num_tokens >= 64 * 8192
    assert budget.max_num_batched_tokens == 8192
    # gpt-oss-120b on the same card: about 61 GiB of weights leave about 15 GiB, still a whole
    # context window of KV (36 layers: 72 KiB a token).
    big = derive_budget(GPT_OSS_120B, free_bytes=15 * 2**30, block_size=16)
    assert big.num_tokens >= GPT_OSS_120B.context_length
    # With 4 GiB free the step shrinks rather than failing.
    small = derive_budget(GPT_OSS_20B, free_bytes=4 * 2**30, block_size=16)
    assert small.max_num_batched_tokens == 4096


@settings(max_examples=60, deadline=None)
@given(
    prompts=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=30), min_size=1, max_size=6),
    num_blocks=st.integers(8, 24),
    budget=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_random_workloads_keep_block_accounting_exact(
    prompts: list[list[int]], num_blocks: int, budget: int, seed: int
) -> None:
    """Random prompts from a 4-token vocabulary (many shared prefixes), tight memory, random
    sampled tokens: every step keeps the books exact, and everything finishes."""
    rng = random.Random(seed)
    sched = make(num_blocks=num_blocks, seqs=3, tokens=budget)
    for i, p in enumerate(prompts):
        sched.add(Sequence(f"r{i}", list(p), len(p), SamplingParams(max_new_tokens=rng.randint(1, 6))))
    for _ in range(2000):
        if not sched.has_work():
            break
        out = sched.schedule()
        check_books(sched)
        sched.update(out, {s.seq.request_id: rng.randint(0, 3) for s in out.scheduled if s.samples})
        check_books(sched)
    assert not sched.has_work()
    assert sched.blocks.num_used == 0


def check_books(sched: Scheduler) -> None:
    bm = sched.blocks
    tables = [s.block_table for s in sched.running] + [s.block_table for s in sched.waiting]
    refs = Counter(b for table in tables for b in table)
    assert all(bm.ref_count(b) == n for b, n in refs.items())
    assert bm.num_used == len(refs)
    for s in sched.running:
        assert len(s.block_table) * BS >= s.num_computed_tokens
        assert s.num_computed_tokens < s.num_tokens or s.num_computed_tokens == s.num_tokens
    for b, n in refs.items():
        if n > 1:  # shared only through the prefix cache, so only full, hashed blocks
            assert b in bm._by_hash.values()


def test_a_sequence_larger_than_the_whole_cache_ends_with_context() -> None:
    sched = make(num_blocks=3, tokens=64)  # 12 tokens of KV in all
    sched.add(a := seq("a", 10, max_new=5))
    step(sched)  # prompt in 3 blocks, first token sampled: 11 tokens
    step(sched)  # 12 tokens
    step(sched)  # 13 tokens, 12 with KV: every slot of the 3 blocks is used
    out = sched.schedule()  # the 13th token's KV needs a 4th block that can never exist
    assert out.finished == [a] and a.finish_reason == "context"
    assert plan(out) == [] and not sched.has_work() and sched.blocks.num_used == 0


def test_prefix_statistics_count_each_admission_once() -> None:
    sched = make(seqs=1)
    sched.add(a := seq("a", 9, max_new=3))
    sched.add(seq("b", 9))  # the same 9 tokens; waits for a's slot in the batch
    while not a.is_finished:
        step(sched)
    step(sched)  # b admitted: its 2 usable full blocks are a's cached ones
    assert (sched.blocks.prefix_queries, sched.blocks.prefix_hits) == (2 + 2, 2)
