"""MLXEngine: gpt-oss on MLX behind codexpc's engine contract, one sequence at a time.

One worker thread owns everything MLX: it loads the weights, then takes sequences from a queue
in arrival order and runs each to its end (decode.py); the others wait, and /health says so
(`concurrency` 1, `waiting`). Why not batched: mlx-lm's batched generation pads the sequences
to one length and keeps rotating sliding-window caches that cannot rewind to a shared prefix;
for one user's coding agent the second turn's prefix reuse is worth more than a second stream,
and a batched decode of different lengths would need our own attention masks per row (not done).

Every MLX call happens on that thread: MLX's streams belong to the thread that made them.
Tokens reach the daemon's event loop through engine/threaded_generation.py, as the paged
engine's do.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx

from codexpc.checkpoint import open_checkpoint
from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.mlx import decode
from codexpc.engine.mlx.budget import KVBudget, derive_budget, free_bytes
from codexpc.engine.mlx.kv_cache import PrefixPool
from codexpc.engine.mlx.model import Transformer
from codexpc.engine.mlx.platform import mlx_device
from codexpc.engine.mlx.weights import load_weights
from codexpc.engine.sampling import make_generator
from codexpc.engine.threaded_generation import ThreadedGeneration
from codexpc.errors import ContextLengthError, EngineError, RequestError

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
CONCURRENCY = 1
SCHEDULING = "one sequence at a time, the others queued in arrival order"


class MLXEngine:
    def __init__(self, checkpoint: Path, model_name: str, device: str = "auto",
                 budget_tokens: int | None = None) -> None:
        self._device, device_name = mlx_device(device)
        ckpt = open_checkpoint(checkpoint)  # detects the layout, validates every header
        self.config = ckpt.config
        # fp32 on the CPU (the reference's numerics), bf16 on Metal (the checkpoints' own dtype).
        self.dtype = mx.float32 if device_name == "cpu" else mx.bfloat16
        self.info = EngineInfo(kind="mlx", model=model_name, checkpoint=str(checkpoint),
                               device=f"mlx:{device_name}", context_length=ckpt.config.context_length)
        self._jobs: queue.Queue[decode.Job | None] = queue.Queue()
        self._running: decode.Job | None = None
        self._tokens_generated = 0
        self._closing = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.model: Transformer | None = None
        self.pool: PrefixPool | None = None
        self.budget: KVBudget | None = None
        self._worker = threading.Thread(target=self._run, args=(ckpt, budget_tokens), name="codexpc-mlx-engine",
                                        daemon=True)
        self._worker.start()
        self._ready.wait()
        if self._load_error is not None:
            raise self._load_error

    @property
    def limit(self) -> int:
        """Tokens one sequence may reach: the context window, or the K/V budget if smaller."""
        assert self.budget is not None
        return min(self.info.context_length, self.budget.tokens)

    # ----- the daemon's side (event loop thread) -----
    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ThreadedGeneration:
        if self._closing:
            raise EngineError("the engine is closed")
        self._check_prompt(prompt)
        generation = ThreadedGeneration(request_id, len(prompt), asyncio.get_running_loop())
        if params.max_new_tokens == 0:
            generation.deliver_now(TokenEvent(None, "length"))
            return generation
        job = decode.Job(request_id, list(prompt), params, make_generator(params.seed), generation)
        generation._on_cancel = job.cancelled.set
        self._jobs.put(job)
        return generation

    def stats(self) -> dict[str, Any]:
        pool, budget = self.pool, self.budget
        assert pool is not None and budget is not None
        return {
            "running": 1 if self._running is not None else 0,
            "waiting": self._jobs.qsize(),
            "concurrency": CONCURRENCY,
            "scheduling": SCHEDULING,
            "tokens_generated": self._tokens_generated,
            "kv_budget_tokens": budget.tokens,
            "kv_budget_bytes": budget.nbytes,
            "prefix_cache_sequences": len(pool.entries),
            "prefix_cache_tokens": pool.cached_tokens,
            "prefix_cache_queries": pool.queries,
            "prefix_cache_hits": pool.hits,
            "prefix_cache_hit_tokens": pool.hit_tokens,
            "device_memory_bytes": int(mx.get_active_memory()),
            "device": self.info.device,
        }

    async def close(self) -> None:
        self._closing = True
        running = self._running
        if running is not None:
            running.cancelled.set()
        self._jobs.put(None)  # wake the worker
        await asyncio.to_thread(self._worker.join)
        for job in [running, *_drain(self._jobs)]:
            if job is not None:
                job.generation.deliver_threadsafe(TokenEvent(None, "cancelled"))

    def _check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise RequestError("the prompt is empty")
        if len(prompt) >= self.limit:
            raise ContextLengthError(f"the prompt has {len(prompt)} tokens; the context window is {self.limit}")
        if min(prompt) < 0 or max(prompt) >= self.config.vocab_size:
            raise RequestError(f"prompt token ids must be in [0, {self.config.vocab_size})")

    # ----- the worker thread -----
    def _run(self, ckpt: Any, budget_tokens: int | None) -> None:
        try:
            self._load(ckpt, budget_tokens)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
            self._load_error = exc
            return
        finally:
            self._ready.set()
        while not self._closing:
            try:
                job = self._jobs.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                continue
            if job is None or job.cancelled.is_set():
                continue
            self._running = job
            try:
                self._serve(job)
            finally:
                self._running = None

    def _load(self, ckpt: Any, budget_tokens: int | None) -> None:
        mx.set_default_device(self._device)
        self.model = load_weights(ckpt, self.dtype)
        on_metal = self.info.device == "mlx:metal"
        if on_metal:  # keep the weights resident: a page-out costs the next token seconds
            mx.set_wired_limit(int(mx.device_info()["max_recommended_working_set_size"]))
        dtype_bytes = 4 if self.dtype == mx.float32 else 2
        self.budget = derive_budget(self.config, free_bytes(on_metal), dtype_bytes)
        if budget_tokens is not None:  # tests: a small pool, to see eviction
            self.budget = KVBudget(budget_tokens, self.budget.bytes_per_token, self.budget.free_bytes)
        self.pool = PrefixPool(self.config, self.dtype, self.budget.tokens)
        log.info("mlx engine on %s: K/V for %d tokens (%.1f GiB); %s", self.info.device, self.budget.tokens,
                 self.budget.nbytes / 2**30, SCHEDULING)

    def _serve(self, job: decode.Job) -> None:
        assert self.model is not None and self.pool is not None
        started = time.monotonic()
        cache, cached = self.pool.take(job.prompt)
        job.generation.admit_threadsafe(cached)  # the admission event: what the prefix cache served
        # Room for this sequence to its end: older caches go first.
        self.pool.make_room(min(self.limit, len(job.prompt) + job.params.max_new_tokens))
        try:
            produced = decode.run(self.model, cache, job, self.limit)
        except Exception as exc:  # noqa: BLE001 - a failed sequence ends with an error, the engine goes on
            log.exception("mlx generation failed (request %s)", job.request_id)
            job.generation.deliver_threadsafe(TokenEvent(None, "error", error=f"{type(exc).__name__}: {exc}"))
            return
        self._tokens_generated += produced
        self.pool.give(cache)
        log.debug("request %s: %d prompt tokens (%d cached), %d generated in %.2f s", job.request_id,
                  len(job.prompt), cached, produced, time.monotonic() - started)


def _drain(q: queue.Queue[decode.Job | None]) -> list[decode.Job | None]:
    items: list[decode.Job | None] = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
