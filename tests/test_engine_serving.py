"""The serving engine (PagedEngine, on the CPU its reference path) with a tiny random-weight
checkpoint: the daemon's view of generation, and its tokens against the plain model's."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codexpc.checkpoint import open_checkpoint, write_checkpoint
from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.factory import create_engine, resolve_device
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import TINY
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.paged_engine import PagedEngine
from codexpc.engine.weights import load_model
from codexpc.errors import ConfigError, ContextLengthError, EngineError, RequestError

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(TINY, "original", tmp_path_factory.mktemp("tiny") / "original", seed=0)


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> Transformer:
    return load_model(open_checkpoint(checkpoint), torch.device("cpu"))


def make_engine(model: Transformer, context_length: int = TINY.context_length) -> PagedEngine:
    info = EngineInfo(kind="paged", model="tiny", checkpoint="random", device="cpu", context_length=context_length)
    # A small cache, set here: the one sized from free memory is for serving.
    return PagedEngine(model, CacheBudget(16, 64, 4, 256, bytes_per_block=0), info)


async def collect(engine: PagedEngine, prompt: list[int], params: SamplingParams, rid: str = "r") -> list[TokenEvent]:
    return [event async for event in engine.submit(prompt, params, rid)]


def greedy_by_recompute(model: Transformer, prompt: list[int], steps: int) -> list[int]:
    tokens = list(prompt)
    for _ in range(steps):
        tokens.append(int(model(torch.tensor(tokens)).argmax()))
    return tokens[len(prompt) :]


PROMPT = [5, 17, 200000, 3, 99, 1234, 7, 7, 42, 1000, 11, 12]


async def test_greedy_tokens_match_full_recompute(model: Transformer) -> None:
    engine = make_engine(model)
    events = await collect(engine, PROMPT, GREEDY)
    await engine.close()
    assert [e.token_id for e in events] == greedy_by_recompute(model, PROMPT, 8)
    assert [e.finish_reason for e in events] == [None] * 7 + ["length"]


async def test_same_seed_same_tokens_other_seed_other_tokens(model: Transformer) -> None:
    engine = make_engine(model)
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=1234, max_new_tokens=6)
    first = await collect(engine, PROMPT, params)
    again = await collect(engine, PROMPT, params)
    other = await collect(engine, PROMPT, replace(params, seed=99))
    await engine.close()
    assert first == again
    assert first != other


async def test_stop_token_is_yielded_last_with_reason_stop(model: Transformer) -> None:
    expected = greedy_by_recompute(model, PROMPT, 4)
    engine = make_engine(model)
    params = replace(GREEDY, stop_token_ids=frozenset({expected[2]}))
    events = await collect(engine, PROMPT, params)
    await engine.close()
    stop_at = expected.index(expected[2])
    assert [e.token_id for e in events] == expected[: stop_at + 1]
    assert events[-1].finish_reason == "stop"


async def test_context_cap_ends_with_reason_context(model: Transformer) -> None:
    engine = make_engine(model, context_length=len(PROMPT) + 3)
    events = await collect(engine, PROMPT, GREEDY)
    with pytest.raises(ContextLengthError):
        engine.submit(PROMPT + [1, 2, 3], GREEDY, "too-long")
    await engine.close()
    assert len(events) == 3 and events[-1].finish_reason == "context"


async def test_bad_prompts_are_refused_at_submit(model: Transformer) -> None:
    engine = make_engine(model)
    with pytest.raises(RequestError):
        engine.submit([], GREEDY, "empty")
    with pytest.raises(RequestError):
        engine.submit([TINY.vocab_size], GREEDY, "out-of-vocab")
    events = await collect(engine, PROMPT, replace(GREEDY, max_new_tokens=0))
    await engine.close()
    assert events == [TokenEvent(None, "length")]
    with pytest.raises(EngineError):
        engine.submit(PROMPT, GREEDY, "after-close")


async def test_concurrent_sequences_each_get_their_own_tokens(model: Transformer) -> None:
    prompts = [PROMPT, PROMPT[3:], [9] * 20]
    engine = make_engine(model)
    results = await asyncio.gather(*(collect(engine, p, GREEDY, f"r{i}") for i, p in enumerate(prompts)))
    await engine.close()
    for prompt, events in zip(prompts, results, strict=True):
        assert [e.token_id for e in events] == greedy_by_recompute(model, prompt, 8)


async def test_cancel_ends_iteration_and_frees_the_sequence(model: Transformer) -> None:
    engine = make_engine(model)
    generation = engine.submit(PROMPT, replace(GREEDY, max_new_tokens=10_000), "long")
    seen: list[TokenEvent] = []
    async for event in generation:
        seen.append(event)
        if len(seen) == 2:
            await generation.cancel()
    for _ in range(100):  # the worker frees it before its next step
        if engine.stats()["running"] == 0:
            break
        await asyncio.sleep(0.01)
    stats = engine.stats()
    await engine.close()
    assert seen[-1] == TokenEvent(None, "cancelled")
    assert stats["running"] == 0 and stats["kv_blocks_used"] == 0


async def test_worker_error_ends_one_generation_not_the_engine(
    model: Transformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(model)
    paged_model = engine.runner.model
    real_forward = paged_model.forward

    def failing_forward(inputs: object) -> torch.Tensor:
        # Fault injection: stands in for a CUDA out-of-memory error, which a CPU cannot produce.
        raise RuntimeError("CUDA out of memory (injected)")

    monkeypatch.setattr(paged_model, "forward", failing_forward)
    failed = await collect(engine, PROMPT, GREEDY)
    monkeypatch.setattr(paged_model, "forward", real_forward)
    after = await collect(engine, PROMPT, GREEDY)
    await engine.close()
    assert failed[-1].finish_reason == "error" and "out of memory" in (failed[-1].error or "")
    assert after[-1].finish_reason == "length" and len(after) == 8


async def test_stats_count_generated_tokens(model: Transformer) -> None:
    engine = make_engine(model)
    await collect(engine, PROMPT, GREEDY)
    stats = engine.stats()
    await engine.close()
    assert stats["tokens_generated"] == 8 and stats["running"] == 0 and stats["waiting"] == 0
    assert stats["device"] == "cpu" and stats["device_memory_bytes"] > 100_000_000  # the fp32 embeddings alone: 103 MB


async def test_create_engine_torch_is_the_paged_engine_with_a_warning(
    checkpoint: Path, model: Transformer, caplog: pytest.LogCaptureFixture
) -> None:
    """The retired kind "torch" still loads (a config from before keeps working) and says so."""
    with caplog.at_level(logging.WARNING, logger="codexpc.engine.factory"):
        engine = create_engine("torch", model="tiny", checkpoint=checkpoint, device="cpu")
    events = [e async for e in engine.submit(PROMPT, GREEDY, "factory")]
    await engine.close()
    assert any('engine "torch" is retired' in r.getMessage() and '"paged"' in r.getMessage() for r in caplog.records)
    assert engine.info.kind == "paged" and engine.info.device == "cpu"
    assert engine.info.context_length == TINY.context_length
    assert [e.token_id for e in events] == greedy_by_recompute(model, PROMPT, 8)
    assert len(events) == 8 and events[-1].finish_reason == "length"


async def test_create_engine_paged_serves_the_same_greedy_tokens(checkpoint: Path, model: Transformer) -> None:
    engine = create_engine("paged", model="tiny", checkpoint=checkpoint, device="cpu")
    events = [e async for e in engine.submit(PROMPT, GREEDY, "paged")]
    await engine.close()
    assert engine.info.kind == "paged"
    assert [e.token_id for e in events] == greedy_by_recompute(model, PROMPT, 8)


def test_create_engine_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ConfigError, match="checkpoint"):
        create_engine("torch", model="tiny", checkpoint=None, device="cpu")
    with pytest.raises(ConfigError, match="checkpoint"):
        create_engine("paged", model="tiny", checkpoint=None)
    with pytest.raises(ConfigError, match="unknown"):
        create_engine("tensorrt", model="tiny", checkpoint=None)
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")


def test_auto_device_is_cuda_only_where_available() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_create_engine_scripted_needs_no_weights() -> None:
    engine = create_engine("scripted", model="gpt-oss-20b", checkpoint=None)
    assert engine.info.kind == "scripted" and engine.info.model == "gpt-oss-20b"


def test_baseline_bench_runs_on_cpu_without_the_server_packages(tmp_path: Path) -> None:
    # The GPU benchmark host has no openai-harmony, fastapi or quicktok: the engine must not need them.
    script = (
        "import sys, runpy; sys.modules['openai_harmony'] = None; sys.modules['fastapi'] = None; sys.modules['quicktok'] = None; "
        f"sys.argv = ['baseline', '--size', 'tiny', '--checkpoint', {str(tmp_path / 'ckpt')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}, '--prefill', '40', '--decode-tokens', '3', '--no-flex']; "
        "runpy.run_path('bench/baseline.py', run_name='__main__')"
    )
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"CODEXPC_CACHE_DIR": str(tmp_path / "empty-cache"), "CODEXPC_VOCAB": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "ckpt" / "tokenizer.json").exists()  # no vocabulary there: weights only
    report = next((tmp_path / "out").glob("baseline-tiny-*.md")).read_text()
    assert "| prefill 40 (tok/s) |" in report and "transformers eager" in report
    assert "failed" not in report
