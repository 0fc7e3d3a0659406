"""PagedEngine: continuous batching over a paged KV cache with cross-turn prefix reuse.

One worker thread owns the scheduler, the block manager and the model. Every step it takes in
new requests and cancellations, schedules (decodes first, then prompt chunks in the token
budget left), runs one batched forward pass, and hands each sampled token to its request's
asyncio loop. `step()` is the whole of it: schedule, run, update.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

import torch

from codexpc.constrain.matcher import constraint_stats, consume_all
from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.model import Transformer
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.cache_sizing import CacheBudget, budget_for
from codexpc.engine.paged.kernel_plan import KernelPlan
from codexpc.engine.paged.model_runner import ModelRunner
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
from codexpc.engine.paged.sequence import Sequence as Seq
from codexpc.engine.sampling import make_generator
from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.engine.speculative.policy import Speculator
from codexpc.engine.threaded_generation import ThreadedGeneration, one_wakeup
from codexpc.errors import ContextLengthError, EngineError, RequestError

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5


class PagedEngine:
    def __init__(self, model: Transformer, budget: CacheBudget, info: EngineInfo,
                 plan: KernelPlan | None = None, speculative: SpeculativeConfig | None = None) -> None:
        self.info = info
        self.config = model.config
        self.budget = budget
        self.blocks = BlockManager(budget.num_blocks, budget.block_size)
        sched = SchedulerConfig(budget.max_num_seqs, budget.max_num_batched_tokens, info.context_length)
        self.speculator = Speculator(speculative) if speculative is not None and speculative.enabled else None
        self.scheduler = Scheduler(sched, self.blocks, self.speculator)
        self.runner = ModelRunner.create(model, budget, plan)
        self._weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        self._incoming: queue.Queue[tuple[Seq, ThreadedGeneration]] = queue.Queue()
        self._cancels: queue.Queue[str] = queue.Queue()
        self._live: dict[str, tuple[Seq, ThreadedGeneration, torch.Generator]] = {}
        self._cancelled_early: set[str] = set()
        self._tokens_generated = 0
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="codexpc-paged-engine", daemon=True)
        self._worker.start()

    # ----- the daemon's side (event loop thread) -----
    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ThreadedGeneration:
        if self._closing:
            raise EngineError("the engine is closed")
        self._check_prompt(prompt)
        generation = ThreadedGeneration(request_id, len(prompt), asyncio.get_running_loop(),
                                        on_cancel=lambda: self._cancels.put(request_id))
        if params.max_new_tokens == 0:
            generation.deliver_now(TokenEvent(None, "length"))
            return generation
        self._incoming.put((Seq(request_id, list(prompt), len(prompt), params), generation))
        return generation

    def stats(self) -> dict[str, Any]:
        bm = self.blocks
        return {
            "running": len(self.scheduler.running),
            "waiting": len(self.scheduler.waiting) + self._incoming.qsize(),
            "tokens_generated": self._tokens_generated,
            "kv_blocks_total": bm.num_blocks,
            "kv_blocks_used": bm.num_used,
            "kv_blocks_free": bm.num_free,
            "kv_block_size": bm.block_size,
            "prefix_cache_blocks": bm.num_cached,
            "prefix_cache_queries": bm.prefix_queries,
            "prefix_cache_hits": bm.prefix_hits,
            "preemptions": self.scheduler.num_preemptions,
            "device_memory_bytes": self._memory_bytes(),
            "spec_drafted_tokens": self.speculator.drafted if self.speculator else 0,
            "spec_accepted_tokens": self.speculator.accepted if self.speculator else 0,
            "device": self.info.device,
            **constraint_stats(),
        }

    def _memory_bytes(self) -> int:
        """On a GPU, what the allocator holds for tensors; on the CPU, the weights and the KV cache."""
        if self.runner.device.type == "cuda":
            return torch.cuda.memory_allocated(self.runner.device)
        cache = self.runner.model.cache
        return self._weight_bytes + 2 * cache.k.numel() * cache.k.element_size()

    async def close(self) -> None:
        self._closing = True
        await asyncio.to_thread(self._worker.join)
        for _, generation, _ in self._live.values():
            generation.deliver_threadsafe(TokenEvent(None, "cancelled"))
        self._live.clear()
        self.runner.release()

    def _check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise RequestError("the prompt is empty")
        if len(prompt) >= self.info.context_length:
            raise ContextLengthError(
                f"the prompt has {len(prompt)} tokens; the context window is {self.info.context_length}"
            )
        if min(prompt) < 0 or max(prompt) >= self.config.vocab_size:
            raise RequestError(f"prompt token ids must be in [0, {self.config.vocab_size})")

    # ----- the worker thread -----
    def _run(self) -> None:
        while not self._closing:
            self._take_incoming(block=not self.scheduler.has_work())
            self._take_cancels()
            if self.scheduler.has_work():
                self._step_safely()

    def _take_incoming(self, block: bool) -> None:
        try:
            while True:
                seq, generation = self._incoming.get(block=block, timeout=IDLE_POLL_S if block else None)
                block = False
                if seq.request_id in self._cancelled_early:
                    self._cancelled_early.discard(seq.request_id)
                    continue
                self._live[seq.request_id] = (seq, generation, make_generator(seq.params.seed))
                if seq.params.constraint is not None:
                    seq.matcher = seq.params.constraint.start()
                self.scheduler.add(seq)
        except queue.Empty:
            return

    def _take_cancels(self) -> None:
        while not self._cancels.empty():
            rid = self._cancels.get_nowait()
            entry = self._live.pop(rid, None)
            if entry is not None:
                self.scheduler.finish(entry[0])
            else:  # cancelled before the worker took it in: drop it when it arrives
                self._cancelled_early.add(rid)

    def _step_safely(self) -> None:
        try:
            self.step()
        except Exception as exc:  # noqa: BLE001 - an OOM or a kernel fault fails the batch, not the daemon
            log.exception("paged engine step failed; failing %d running sequences", len(self.scheduler.running))
            for seq in list(self.scheduler.running):
                _, generation, _ = self._live.pop(seq.request_id)
                self.scheduler.finish(seq)
                generation.deliver_threadsafe(TokenEvent(None, "error", error=f"{type(exc).__name__}: {exc}"))

    def step(self) -> None:
        out = self.scheduler.schedule()
        for seq in out.finished:  # outgrew the whole cache: ends as if its context were full
            self._live.pop(seq.request_id)[1].deliver_threadsafe(TokenEvent(None, seq.finish_reason))
        if out.is_empty:
            return
        generators = {rid: entry[2] for rid, entry in self._live.items()}
        if out.num_drafted:  # speculative: some sequences verify drafted tokens
            sampled, verified = self.runner.verify(out, generators)
        else:
            sampled, verified = self.runner.step(out, generators), {}
        finished = {seq.request_id for seq in self.scheduler.update(out, sampled, verified)}
        self._consume_constrained(sampled, verified)  # after update: it cuts `verified` at a stop
        emitted = {rid: [token] for rid, token in sampled.items()} | verified  # verified: as kept
        with one_wakeup():  # the step's tokens reach the event loop together, in one wake-up
            for s in out.scheduled:  # the first time only: what the prefix cache served, before any token
                self._live[s.seq.request_id][1].admit_threadsafe(s.seq.num_cached_tokens)
            for rid, tokens in emitted.items():
                seq, generation, _ = self._live[rid]
                self._tokens_generated += len(tokens)
                if rid in finished:
                    del self._live[rid]
                delivered = True
                for i, token in enumerate(tokens):
                    last = rid in finished and i == len(tokens) - 1
                    delivered = generation.deliver_threadsafe(TokenEvent(token, seq.finish_reason if last else None))
                if not delivered and rid not in finished:
                    self._cancels.put(rid)


    def _consume_constrained(self, sampled: dict[str, int], verified: dict[str, list[int]]) -> None:
        """Constrained sequences' matchers move past the tokens the step gave them."""
        pairs = [(m, t) for rid, t in sampled.items() if (m := self._live[rid][0].matcher) is not None]
        if pairs:
            consume_all(pairs)
        for rid, tokens in verified.items():
            matcher = self._live[rid][0].matcher
            if matcher is not None:
                for token in tokens:
                    matcher.consume(token)


def build_paged_engine(model: Transformer, info: EngineInfo, block_size: int = 16,
                       plan: KernelPlan | None = None, speculative: SpeculativeConfig | None = None) -> PagedEngine:
    """The factory's entry: size the cache from what is free once the weights are loaded; the
    kernels are `plan`'s (None: the device's default_plan, built once in ModelRunner.create)."""
    dtype_bytes = model.embedding.weight.element_size()
    budget = budget_for(model.config, model.device, block_size, dtype_bytes)
    log.info("paged engine: %d KV blocks of %d tokens (%.1f GiB), %d sequences, %d tokens per step",
             budget.num_blocks, block_size, budget.kv_bytes / 2**30, budget.max_num_seqs,
             budget.max_num_batched_tokens)
    return PagedEngine(model, budget, info, plan, speculative)
