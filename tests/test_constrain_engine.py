"""The paged engine samples under SamplingParams.constraint (8 sequences at once, temperature 1,
and greedy; on a CPU its reference path), on the tiny random checkpoint with Codex's
real turn-1 request. Random weights pick tokens at random, so only the masks keep it valid."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from constrain_support import tokenizer
from openai_harmony import HarmonyEncoding
from test_constrain_codex import check_well_formed, decode

from codexpc.checkpoint import open_checkpoint
from codexpc.constrain import SequenceMatcher, constraint_for
from codexpc.engine.api import EngineInfo, SamplingParams
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import TINY
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.paged_engine import PagedEngine
from codexpc.engine.weights import load_model
from codexpc.harmony.decoder import stop_token_ids
from codexpc.harmony.render import RenderedPrompt, RenderOptions, render_responses

MAX_NEW = 48


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Transformer:
    return load_model(open_checkpoint(tiny_checkpoint), torch.device("cpu"))


@pytest.fixture(scope="module")
def rendered(encoding: HarmonyEncoding, codex_turn1_request: dict[str, Any]) -> RenderedPrompt:
    return render_responses(codex_turn1_request, encoding, RenderOptions(current_date="2026-01-01"))


def info(kind: str) -> EngineInfo:
    return EngineInfo(kind=kind, model="tiny", checkpoint="random", device="cpu", context_length=TINY.context_length)


async def run(engine: PagedEngine, prompt: list[int], params: SamplingParams, n: int) -> list[list[int]]:
    async def one(i: int) -> list[int]:
        generation = engine.submit(prompt, params if params.temperature == 0 else
                                   SamplingParams(**{**params.__dict__, "seed": i}), f"r{i}")
        return [e.token_id async for e in generation if e.token_id is not None]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_paged_engine_samples_8_codex_completions_under_the_constraint(
        model: Transformer, rendered: RenderedPrompt, encoding: HarmonyEncoding) -> None:
    constraint = constraint_for(rendered.registry, None, tokenizer())
    stops = stop_token_ids(encoding)
    budget = CacheBudget(16, 1200, 8, 4096, bytes_per_block=0)
    failures_before = SequenceMatcher.failures  # process-wide: other tests switch matchers off on purpose
    engine = PagedEngine(model, budget, info("paged"))
    try:
        sampled = await run(engine, rendered.tokens, SamplingParams(1.0, max_new_tokens=MAX_NEW, stop_token_ids=stops,
                                                                    constraint=constraint), 8)
        greedy = await run(engine, rendered.tokens, SamplingParams(0.0, max_new_tokens=MAX_NEW, stop_token_ids=stops,
                                                                   constraint=constraint), 1)
        stats = engine.stats()
    finally:
        await engine.close()
    for tokens in sampled + greedy:
        check_well_formed(decode(encoding, rendered.registry, tokens, MAX_NEW))
    assert len({tuple(t) for t in sampled}) > 1  # temperature 1 with 8 seeds: different completions
    assert stats["constraint_failures"] == SequenceMatcher.failures == failures_before  # no sequence fell back


async def test_unconstrained_random_weights_break_harmony_so_the_test_above_means_something(
        model: Transformer, rendered: RenderedPrompt, encoding: HarmonyEncoding) -> None:
    engine = PagedEngine(model, CacheBudget(16, 1200, 8, 4096, bytes_per_block=0), info("paged"))
    try:
        (tokens,) = await run(engine, rendered.tokens, SamplingParams(1.0, seed=1, max_new_tokens=8), 1)
    finally:
        await engine.close()
    # The decoder would only notice at <|message|>; the grammar refuses at the first token.
    matcher = constraint_for(rendered.registry, None, tokenizer()).start()
    assert not matcher.allows(tokens[0]), encoding.decode(tokens)
