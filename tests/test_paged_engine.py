"""PagedEngine on the CPU with the reference maths: the plain model's tokens, prefix reuse."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from plain_generation import plain_tokens

from codexpc.checkpoint import open_checkpoint, write_checkpoint
from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import TINY
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.kernel_plan import KernelPlan
from codexpc.engine.paged.model_runner import ModelRunner, build_host_step
from codexpc.engine.paged.paged_engine import PagedEngine
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
from codexpc.engine.paged.sequence import Sequence
from codexpc.engine.sampling import make_generator
from codexpc.engine.weights import load_model

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=6)
BS = 4
PROMPT = [5, 17, 200000, 3, 99, 1234, 7, 7, 42, 1000, 11, 12, 13]  # longer than the window (8)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Transformer:
    path = write_checkpoint(TINY, "original", tmp_path_factory.mktemp("tiny") / "original", seed=0)
    return load_model(open_checkpoint(path), torch.device("cpu"))


def info(kind: str) -> EngineInfo:
    return EngineInfo(kind=kind, model="tiny", checkpoint="random", device="cpu", context_length=TINY.context_length)


def paged(model: Transformer, num_blocks: int = 64, step_tokens: int = 8, seqs: int = 4) -> PagedEngine:
    # Tiny blocks and a tiny step budget: prompts are prefilled in several chunks.
    budget = CacheBudget(BS, num_blocks, seqs, step_tokens, bytes_per_block=0)
    return PagedEngine(model, budget, info("paged"))


async def tokens(engine: PagedEngine, prompt: list[int], params: SamplingParams,
                 rid: str) -> tuple[list[int], int]:
    generation = engine.submit(prompt, params, rid)
    events: list[TokenEvent] = [e async for e in generation]
    assert events[-1].finish_reason in ("length", "stop")
    return [e.token_id for e in events if e.token_id is not None], generation.cached_tokens


async def test_greedy_tokens_match_the_plain_model_with_concurrent_requests(model: Transformer) -> None:
    prompts = [PROMPT, PROMPT[:5], [9] * 11, PROMPT[3:]]
    expected = [plain_tokens(model, p, GREEDY) for p in prompts]
    engine = paged(model)
    got = await asyncio.gather(*(tokens(engine, p, GREEDY, f"q{i}") for i, p in enumerate(prompts)))
    await engine.close()
    assert [g[0] for g in got] == expected


async def test_second_turn_computes_only_new_tokens(model: Transformer) -> None:
    engine = paged(model)
    first, cached = await tokens(engine, PROMPT, GREEDY, "turn1")
    assert cached == 0
    conversation = PROMPT + first + [77, 78, 79]
    computed_before = engine.stats()["prefix_cache_hits"]
    second, cached = await tokens(engine, conversation, GREEDY, "turn2")
    # Turn 1 computed KV for 13 + 6 - 1 = 18 tokens (the last sampled token never ran): 4 full
    # blocks of 4, so 16 of turn 2's 22 tokens are cached and only 6 are computed.
    assert cached == 16
    assert engine.stats()["prefix_cache_hits"] - computed_before == 4
    await engine.close()
    assert second == plain_tokens(model, conversation, GREEDY)


async def test_preemption_under_block_pressure_keeps_greedy_tokens(model: Transformer) -> None:
    # 9 blocks of 4 cannot hold three 19-token sequences at once: someone is preempted and recomputes.
    engine = paged(model, num_blocks=9, step_tokens=64)
    prompts = [PROMPT, PROMPT[::-1], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9]]
    got = await asyncio.gather(*(tokens(engine, p, GREEDY, f"r{i}") for i, p in enumerate(prompts)))
    stats = engine.stats()
    await engine.close()
    assert stats["preemptions"] > 0
    assert stats["kv_blocks_used"] == 0
    assert [g[0] for g in got] == [plain_tokens(model, p, GREEDY) for p in prompts]


async def test_cancel_frees_blocks(model: Transformer) -> None:
    engine = paged(model)
    generation = engine.submit(PROMPT, SamplingParams(temperature=0.0, max_new_tokens=1000), "c")
    async for _ in generation:
        await generation.cancel()
    for _ in range(50):
        if engine.stats()["kv_blocks_used"] == 0:
            break
        await asyncio.sleep(0.02)
    assert engine.stats()["kv_blocks_used"] == 0
    await engine.close()


async def test_seeded_sampling_matches_the_plain_model(model: Transformer) -> None:
    params = SamplingParams(temperature=0.8, top_p=0.9, seed=1234, max_new_tokens=6)
    expected = plain_tokens(model, PROMPT, params)
    engine = paged(model)
    got, _ = await tokens(engine, PROMPT, params, "b")
    await engine.close()
    assert got == expected


async def test_a_failing_step_ends_its_sequences_with_error_and_the_engine_goes_on(
    model: Transformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = paged(model)
    real_step = engine.runner.step
    calls = {"n": 0}

    def flaky(out, generators):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_step(out, generators)

    monkeypatch.setattr(engine.runner, "step", flaky)
    events = [e async for e in engine.submit(PROMPT, GREEDY, "boom")]
    assert events[-1].finish_reason == "error" and "simulated" in (events[-1].error or "")
    assert engine.stats()["kv_blocks_used"] == 0
    after, _ = await tokens(engine, PROMPT, GREEDY, "fine")
    await engine.close()
    assert len(after) == GREEDY.max_new_tokens


@pytest.mark.gpu
def test_gpu_decode_graph_replay_matches_an_eager_step(tmp_path: Path) -> None:
    """On a GPU: a decode step replayed from a CUDA graph gives the eager step's logits. On
    Hopper the graph's kernels are launched programmatically (kernels/pdl.py) and the eager ones
    plainly, so this also checks the kernels' waits. (Kernels vs reference maths:
    tests/test_kernels_gpu.py.)"""
    path = write_checkpoint(TINY, "original", tmp_path / "tiny", seed=0)
    model = load_model(open_checkpoint(path), torch.device("cuda"))
    runner = ModelRunner.create(model, CacheBudget(16, 64, 8, 256, bytes_per_block=0))
    assert runner.plan.kernels and runner.graphs is not None
    sched = Scheduler(SchedulerConfig(8, 256, TINY.context_length), BlockManager(64, 16))
    for i, prompt in enumerate([PROMPT, PROMPT[::-1], [9] * 40]):
        sched.add(Sequence(f"g{i}", list(prompt), len(prompt), GREEDY))
    out = sched.schedule()  # the prompts, eagerly
    logits = runner.model.forward(runner._to_device(build_host_step(out, 16)))
    sched.update(out, {s.seq.request_id: t for s, t in zip(out.scheduled, logits.argmax(-1).tolist(), strict=True)})
    host = build_host_step(sched.schedule(), 16)  # three decodes: padded to the graph of 4
    replayed = runner.graphs.run(host.tokens, host.positions, host.block_tables, host.slots).clone()
    eager = runner.model.forward(runner._to_device(host))
    assert ((replayed.float() - eager.float()).norm() / eager.float().norm()).item() < 1e-2


def _decode_run(runner: ModelRunner, steps: int) -> dict[str, list[int]]:
    """Scheduler and runner by hand: a greedy and a seeded sampled sequence, a greedy one that
    stops early, and a fourth that joins mid-way."""
    sched = Scheduler(SchedulerConfig(8, 256, TINY.context_length), BlockManager(64, 16))
    params = [SamplingParams(temperature=0.0, max_new_tokens=40), SamplingParams(temperature=0.0, max_new_tokens=9),
              SamplingParams(temperature=0.0, max_new_tokens=20),
              SamplingParams(temperature=0.9, top_p=0.95, seed=7, max_new_tokens=35)]
    prompts = [PROMPT, [9] * 21, PROMPT[::-1], [4, 4, 2]]
    seqs = [Sequence(f"r{i}", list(p), len(p), params[i]) for i, p in enumerate(prompts)]
    generators = {"r3": make_generator(7)}
    for seq in (seqs[0], seqs[1], seqs[3]):
        sched.add(seq)
    for i in range(steps):
        if i == 12:
            sched.add(seqs[2])
        out = sched.schedule()
        if out.is_empty:
            break
        sched.update(out, runner.step(out, generators))
    return {s.request_id: s.token_ids[s.num_prompt_tokens:] for s in seqs}


@pytest.mark.gpu
def test_gpu_running_ahead_gives_the_same_tokens(tmp_path: Path) -> None:
    """On a GPU: decode steps launched ahead (KernelPlan.run_ahead) are used when the scheduler
    asks for them and dropped when a sequence ends, joins or crosses a KV block; the tokens,
    greedy and seeded samples alike, are those of the runner that never runs ahead."""
    path = write_checkpoint(TINY, "original", tmp_path / "tiny", seed=0)
    model = load_model(open_checkpoint(path), torch.device("cuda"))
    budget = CacheBudget(16, 64, 8, 256, bytes_per_block=0)
    plain = _decode_run(ModelRunner.create(model, budget, KernelPlan(run_ahead=False)), 60)
    runner = ModelRunner.create(model, budget, KernelPlan(run_ahead=True))
    ahead = _decode_run(runner, 60)
    assert ahead == plain
    assert all(0 < len(t) <= n for t, n in zip(ahead.values(), (40, 9, 20, 35), strict=True))  # a stop may end one
    assert runner.steps_ahead_used > 10
