"""The MLX engine on MLX's CPU build: the paged engine's tokens, prefix reuse across turns,
sampling, stop/length/context, cancellation, the queue, and `auto` picking it on Apple Silicon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("mlx.core", reason="MLX is not installed (pip install 'mlx[cpu]' on Linux)")

from codexpc.checkpoint import write_checkpoint  # noqa: E402
from codexpc.engine.api import Engine, SamplingParams, TokenEvent  # noqa: E402
from codexpc.engine.factory import create_engine, resolve_kind  # noqa: E402
from codexpc.engine.mlx.engine import MLXEngine  # noqa: E402
from codexpc.engine.model_config import TINY  # noqa: E402
from codexpc.errors import ConfigError, ContextLengthError, RequestError  # noqa: E402

PROMPT = [5, 17, 200000, 3, 99, 1234, 7, 7, 42, 1000, 11, 12, 13] * 3  # 39 tokens, window 8
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=64)
# A sharp distribution: the random tiny model at temperature 1 spreads a top-p of 0.9 over
# ~44k tokens of ~2e-5 each, where fp32 rounding (5e-6 on a logit) moves ~1% of draws.
SEEDED = SamplingParams(temperature=0.2, top_p=0.9, seed=7, max_new_tokens=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(TINY, "hf", tmp_path_factory.mktemp("tiny-hf") / "hf", seed=0)


@pytest.fixture(scope="module")
def paged_tokens(checkpoint: Path) -> dict[str, tuple[list[int], str, int]]:
    """The paged engine on the CPU, greedy and seeded, on the same checkpoint (built once)."""

    async def both() -> dict[str, tuple[list[int], str, int]]:
        paged = create_engine("paged", model="tiny", checkpoint=checkpoint, device="cpu")
        try:
            return {"greedy": await run(paged, PROMPT, GREEDY), "seeded": await run(paged, PROMPT, SEEDED)}
        finally:
            await paged.close()

    return asyncio.run(both())


@pytest.fixture
async def mlx(checkpoint: Path) -> AsyncIterator[Engine]:
    engine = create_engine("mlx", model="tiny", checkpoint=checkpoint, device="cpu")
    yield engine
    await engine.close()


async def run(engine: Engine, prompt: list[int], params: SamplingParams, rid: str = "r") -> tuple[list[int], str, int]:
    generation = engine.submit(prompt, params, rid)
    events: list[TokenEvent] = [e async for e in generation]
    tokens = [e.token_id for e in events if e.token_id is not None]
    return tokens, str(events[-1].finish_reason), generation.cached_tokens


async def test_64_greedy_tokens_equal_the_paged_engine_on_the_cpu(mlx: Engine, paged_tokens: dict) -> None:
    expected = paged_tokens["greedy"]
    got = await run(mlx, PROMPT, GREEDY)
    assert got[:2] == expected[:2] and len(got[0]) == 64 and got[1] == "length"
    assert mlx.info.kind == "mlx" and mlx.info.device == "mlx:cpu"


async def test_seeded_sampling_equals_the_paged_engine(mlx: Engine, paged_tokens: dict) -> None:
    expected = paged_tokens["seeded"]
    assert (await run(mlx, PROMPT, SEEDED))[:2] == expected[:2]
    assert (await run(mlx, PROMPT, SEEDED, "again"))[0] == expected[0]  # the same seed again: the same tokens


async def test_second_turn_reuses_the_prefix_and_equals_a_full_prefill(mlx: Engine, checkpoint: Path) -> None:
    params = SamplingParams(temperature=0.0, max_new_tokens=20)
    first, _, cached = await run(mlx, PROMPT, params, "turn1")
    assert cached == 0
    turn2 = PROMPT + first + [200005, 42, 43, 44]  # Codex re-sends the conversation, plus more
    second, _, cached = await run(mlx, turn2, params, "turn2")
    # All but the last sampled token have K/V: it was never fed back (finish by length).
    assert cached == len(PROMPT) + len(first) - 1
    fresh = create_engine("mlx", model="tiny", checkpoint=checkpoint, device="cpu")
    try:
        assert await run(fresh, turn2, params) == (second, "length", 0)
    finally:
        await fresh.close()
    assert mlx.stats()["prefix_cache_hits"] == 1


async def test_a_prompt_that_leaves_a_cached_turn_part_way_rewinds_it(mlx: Engine, checkpoint: Path) -> None:
    """Across the sliding-window layers too: the branch point is far behind the window (8)."""
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    first, _, _ = await run(mlx, PROMPT, params, "a")
    branch = PROMPT[:20] + [77, 78, 79, 80]
    got = await run(mlx, branch, params, "b")
    assert got[2] == 20
    again = await run(mlx, PROMPT + first, params, "c")  # the first branch was kept beside it
    assert again[2] == len(PROMPT) + len(first) - 1
    fresh = create_engine("mlx", model="tiny", checkpoint=checkpoint, device="cpu")
    try:
        assert (await run(fresh, branch, params))[:2] == got[:2]
        assert (await run(fresh, PROMPT + first, params, "c2"))[:2] == again[:2]
    finally:
        await fresh.close()


async def test_stop_token_and_max_new_tokens(mlx: Engine) -> None:
    tokens, _, _ = await run(mlx, PROMPT, SamplingParams(temperature=0.0, max_new_tokens=10))
    stop = tokens[4]
    params = SamplingParams(temperature=0.0, max_new_tokens=10, stop_token_ids=frozenset({stop}))
    assert await run(mlx, PROMPT, params, "s") == (tokens[: tokens.index(stop) + 1], "stop", len(PROMPT) - 1)
    assert (await run(mlx, PROMPT, SamplingParams(max_new_tokens=0), "z"))[:2] == ([], "length")


async def test_the_context_limit_ends_a_sequence_and_refuses_a_prompt(checkpoint: Path) -> None:
    engine = MLXEngine(checkpoint, "tiny", "cpu", budget_tokens=len(PROMPT) + 5)
    try:
        tokens, reason, _ = await run(engine, PROMPT, GREEDY)
        assert (len(tokens), reason) == (5, "context")
        with pytest.raises(ContextLengthError):
            engine.submit(PROMPT * 2, GREEDY, "long")
        with pytest.raises(RequestError):
            engine.submit([TINY.vocab_size], GREEDY, "bad id")
    finally:
        await engine.close()


async def test_requests_queue_one_at_a_time_and_a_cancel_frees_the_engine(mlx: Engine) -> None:
    long = SamplingParams(temperature=0.0, max_new_tokens=4000)
    cancelled = mlx.submit(PROMPT, long, "long")
    queued = [asyncio.create_task(run(mlx, PROMPT[i:], SamplingParams(temperature=0.0, max_new_tokens=8), f"q{i}"))
              for i in range(3)]
    async for event in cancelled:
        assert event.token_id is not None
        stats = mlx.stats()
        assert stats["running"] == 1 and stats["waiting"] == 3 and stats["concurrency"] == 1
        await cancelled.cancel()
        break
    results = await asyncio.gather(*queued)
    assert [(len(t), r) for t, r, _ in results] == [(8, "length")] * 3
    assert mlx.stats()["tokens_generated"] < 4000


async def test_close_ends_running_and_queued_sequences(checkpoint: Path) -> None:
    engine = create_engine("mlx", model="tiny", checkpoint=checkpoint, device="cpu")
    running = engine.submit(PROMPT, SamplingParams(temperature=0.0, max_new_tokens=4000), "a")
    queued = engine.submit(PROMPT, GREEDY, "b")
    first = await running.__aiter__().__anext__()
    assert first.token_id is not None
    await engine.close()
    assert [e.finish_reason async for e in queued][-1] == "cancelled"


def test_auto_is_mlx_on_apple_silicon_and_paged_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from codexpc.engine.mlx import platform as mlx_platform

    monkeypatch.setattr(mlx_platform.sys, "platform", "linux")
    assert resolve_kind("auto") == "paged"
    monkeypatch.setattr(mlx_platform.sys, "platform", "darwin")
    monkeypatch.setattr(mlx_platform.platform, "machine", lambda: "arm64")
    assert resolve_kind("auto") == "mlx"
    assert resolve_kind("torch") == "torch"
    # The default a config file (and so the launchd agent's `codexpc serve`) gets is "auto".
    from codexpc.config.schema import ModelEntry

    assert ModelEntry("gpt-oss-20b").engine == "auto"


def test_device_names(checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="not an MLX device"):
        create_engine("mlx", model="tiny", checkpoint=checkpoint, device="cuda:0")
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        create_engine("mlx", model="tiny", checkpoint=None)
