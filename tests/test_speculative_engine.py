"""The paged engine with speculation on the CPU (tiny checkpoint, reference maths): greedy tokens
identical with and without it, a mixed batch, rollback across blocks, the prefix cache after.

Random weights never copy their input, so drafts would never be accepted. `copying_model` is the
same tiny checkpoint with five tokens edited into a loop (1000 -> 2000 -> ... -> 5000 -> 1000):
their embedding is scaled up so that it dominates the residual stream, and the next token's
unembedding row points along it. Every other token behaves as the random model does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from codexpc.checkpoint import open_checkpoint
from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import TINY
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.paged_engine import PagedEngine
from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.engine.weights import load_model

CYCLE = [1000, 2000, 3000, 4000, 5000]
BS = 4
SPEC = SpeculativeConfig(enabled=True, k=4, min_match=2)
# Ends inside the loop, after a misleading earlier "1000 2000 3000 99": drafts are first
# partly rejected, then (once the output holds the loop) accepted whole.
LOOPING = [7, 8, 1000, 2000, 3000, 99, 55, 66, 4000]
RANDOM = [5, 17, 200000, 3, 99, 1234, 7, 7, 42, 11, 12, 13]  # never reaches the loop: no drafts


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Transformer:
    return copying_model(load_model(open_checkpoint(tiny_checkpoint), torch.device("cpu")))


def copying_model(model: Transformer) -> Transformer:
    with torch.no_grad():
        emb, unemb = model.embedding.weight, model.unembedding.weight
        for i, token in enumerate(CYCLE):
            emb[token] *= 30
            unemb[CYCLE[(i + 1) % len(CYCLE)]] = emb[token] / emb[token].norm() * 2
    return model


def engine(model: Transformer, spec: SpeculativeConfig | None, num_blocks: int = 128) -> PagedEngine:
    info = EngineInfo("paged", "tiny", "random", "cpu", TINY.context_length)
    return PagedEngine(model, CacheBudget(BS, num_blocks, 4, 64, bytes_per_block=0), info, speculative=spec)


async def run(eng: PagedEngine, prompt: list[int], params: SamplingParams, rid: str) -> tuple[list[int], int]:
    generation = eng.submit(prompt, params, rid)
    events: list[TokenEvent] = [e async for e in generation]
    assert events[-1].finish_reason in ("length", "stop")
    assert all(e.finish_reason is None for e in events[:-1])
    return [e.token_id for e in events if e.token_id is not None], generation.cached_tokens


async def both(model: Transformer, prompts: list[list[int]], params: SamplingParams
               ) -> tuple[list[list[int]], list[list[int]], dict[str, int]]:
    plain = engine(model, None)
    expected = await asyncio.gather(*(run(plain, p, params, f"p{i}") for i, p in enumerate(prompts)))
    await plain.close()
    spec = engine(model, SPEC)
    got = await asyncio.gather(*(run(spec, p, params, f"s{i}") for i, p in enumerate(prompts)))
    stats = spec.stats()
    await spec.close()
    return [e[0] for e in expected], [g[0] for g in got], stats


async def test_the_copying_model_loops_and_the_random_part_does_not(model: Transformer) -> None:
    plain = engine(model, None)
    out, _ = await run(plain, LOOPING, SamplingParams(temperature=0.0, max_new_tokens=7), "x")
    other, _ = await run(plain, RANDOM, SamplingParams(temperature=0.0, max_new_tokens=7), "y")
    await plain.close()
    assert out == [5000, 1000, 2000, 3000, 4000, 5000, 1000]
    assert not set(other) & set(CYCLE)


async def test_greedy_tokens_are_identical_with_drafts_accepted_and_rejected(model: Transformer) -> None:
    params = SamplingParams(temperature=0.0, max_new_tokens=30)
    expected, got, stats = await both(model, [LOOPING], params)
    assert got == expected
    drafted, accepted = stats["spec_drafted_tokens"], stats["spec_accepted_tokens"]
    assert 0 < accepted < drafted  # both paths ran: the misleading prefix is rejected
    assert stats["kv_blocks_used"] == 0


async def test_a_batch_where_some_sequences_draft_and_others_do_not(model: Transformer) -> None:
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    prompts = [LOOPING, RANDOM, CYCLE[2:] + [9, 9] + CYCLE, RANDOM[::-1]]
    expected, got, stats = await both(model, prompts, params)
    assert got == expected
    assert stats["spec_accepted_tokens"] > 0


async def test_max_new_tokens_and_stop_tokens_end_exactly_as_without_drafts(model: Transformer) -> None:
    for params in (SamplingParams(temperature=0.0, max_new_tokens=13),
                   SamplingParams(temperature=0.0, max_new_tokens=40, stop_token_ids=frozenset({3000}))):
        expected, got, _ = await both(model, [LOOPING, CYCLE], params)
        assert got == expected


async def test_the_prefix_cache_after_rollbacks_serves_a_second_turn(model: Transformer) -> None:
    """Turn 1 speculates (with rejections across block boundaries); turn 2 re-sends the
    conversation plus new tokens. Its cached KV must be the KV a plain engine computes: compared
    block by block, and through the second turn's tokens."""
    params = SamplingParams(temperature=0.0, max_new_tokens=21)
    spec, plain = engine(model, SPEC), engine(model, None)
    first, _ = await run(spec, LOOPING, params, "t1")
    assert first == (await run(plain, LOOPING, params, "p1"))[0]
    for blocks in (spec.blocks, plain.blocks):
        assert blocks.num_used == 0 and blocks.num_cached == (len(LOOPING) + 21 - 1) // BS
    spec_blocks = {b.hash: i for i, b in enumerate(spec.blocks._blocks) if b.hash is not None}
    plain_blocks = {b.hash: i for i, b in enumerate(plain.blocks._blocks) if b.hash is not None}
    assert spec_blocks.keys() == plain_blocks.keys()
    for h, i in spec_blocks.items():
        j = plain_blocks[h]
        for cache_s, cache_p in ((spec.runner.model.cache.k, plain.runner.model.cache.k),
                                 (spec.runner.model.cache.v, plain.runner.model.cache.v)):
            torch.testing.assert_close(cache_s[:, i], cache_p[:, j], rtol=1e-4, atol=1e-5)
    second_prompt = LOOPING + first + RANDOM
    second, cached = await run(spec, second_prompt, params, "t2")
    fresh = engine(model, None)
    assert second == (await run(fresh, second_prompt, params, "f2"))[0]
    assert cached == ((len(LOOPING) + 21 - 1) // BS) * BS
    for eng in (spec, plain, fresh):
        await eng.close()


async def test_seeded_sampling_is_reproducible_with_drafts(model: Transformer) -> None:
    params = SamplingParams(temperature=1.0, seed=3, max_new_tokens=20)
    runs = []
    for _ in range(2):
        eng = engine(model, SPEC)
        runs.append((await run(eng, LOOPING, params, "r"))[0])
        assert eng.stats()["spec_drafted_tokens"] > 0
        await eng.close()
    assert runs[0] == runs[1] and len(runs[0]) == 20
