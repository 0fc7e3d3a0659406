"""TorchEngine: the plain PyTorch engine. One worker thread, one sequence per model step.

The model runs on a single worker thread; active sequences take turns step by step (a prompt
chunk, or one decoded token), so several requests progress together before the batch scheduler
exists. Tokens reach asyncio consumers through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from codexpc.constrain.matcher import constraint_stats
from codexpc.engine.api import EngineInfo, FinishReason, SamplingParams, TokenEvent
from codexpc.engine.kv_cache import SequenceKV
from codexpc.engine.model import Transformer
from codexpc.engine.sampling import make_generator, sample
from codexpc.engine.threaded_generation import ThreadedGeneration
from codexpc.errors import ContextLengthError, EngineError, RequestError

if TYPE_CHECKING:
    from codexpc.constrain.matcher import SequenceMatcher

log = logging.getLogger(__name__)

PREFILL_CHUNK = 2048  # prompt tokens per step: bounds how long one long prompt holds up the others
INITIAL_OUTPUT_ROOM = 512  # KV positions reserved beyond the prompt at first; grows by doubling
IDLE_POLL_S = 0.5


@dataclass(eq=False)
class _Sequence:
    """The worker's view of one generation."""

    generation: ThreadedGeneration
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator
    kv: SequenceKV | None = None
    computed: int = 0  # prompt tokens whose KV is cached
    output: list[int] = field(default_factory=list)
    cancelled: bool = False  # set from the loop thread
    # Held by the worker while it steps this sequence; cancel frees the KV at once when it is free.
    lock: threading.Lock = field(default_factory=threading.Lock)
    matcher: SequenceMatcher | None = None  # params.constraint's state for this sequence


class TorchEngine:
    def __init__(self, model: Transformer, info: EngineInfo) -> None:
        self.info = info
        self.model = model
        self._incoming: queue.Queue[_Sequence | None] = queue.Queue()
        self._active: list[_Sequence] = []
        self._tokens_generated = 0
        self._weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="codexpc-torch-engine", daemon=True)
        self._worker.start()

    # ----- the daemon's side (event loop thread) -----

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ThreadedGeneration:
        """Queue a sequence; call from the event loop that will iterate the generation."""
        if self._closing:
            raise EngineError("the engine is closed")
        self._check_prompt(prompt)
        generation = ThreadedGeneration(request_id, len(prompt), asyncio.get_running_loop())
        if params.max_new_tokens == 0:
            generation.deliver_now(TokenEvent(None, "length"))
            return generation
        seq = _Sequence(generation, list(prompt), params, make_generator(params.seed))
        generation._on_cancel = lambda: self._cancel(seq)
        self._incoming.put(seq)
        return generation

    def stats(self) -> dict[str, Any]:
        active = list(self._active)
        kv_bytes = sum(s.kv.nbytes() for s in active if s.kv is not None)
        device = self.model.device
        # On a GPU, what the allocator holds for tensors; on the CPU, the weights and KV caches.
        memory = torch.cuda.memory_allocated(device) if device.type == "cuda" else self._weight_bytes + kv_bytes
        return {
            "running": len(active),
            "waiting": self._incoming.qsize(),
            "tokens_generated": self._tokens_generated,
            "kv_cache_bytes": kv_bytes,
            "device_memory_bytes": memory,
            "device": str(device),
            **constraint_stats(self.info),
        }

    async def close(self) -> None:
        self._closing = True
        self._incoming.put(None)  # wake the worker
        await asyncio.to_thread(self._worker.join)
        for seq in self._active + _drain(self._incoming):
            seq.generation.deliver_threadsafe(TokenEvent(None, "cancelled"))
        self._active.clear()
        # The weights go with the last reference to the model (the daemon drops the engine after
        # close); whatever the KV caches held is free now.
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise RequestError("the prompt is empty")
        limit = self.info.context_length
        if len(prompt) >= limit:
            raise ContextLengthError(f"the prompt has {len(prompt)} tokens; the context window is {limit}")
        vocab = self.model.config.vocab_size
        if min(prompt) < 0 or max(prompt) >= vocab:
            raise RequestError(f"prompt token ids must be in [0, {vocab})")

    def _cancel(self, seq: _Sequence) -> None:
        seq.cancelled = True
        if seq.lock.acquire(blocking=False):  # not being stepped: its KV can go now
            seq.kv = None
            seq.lock.release()
        # else the worker is mid-step on it; it frees the KV right after (_drop_cancelled)

    # ----- the worker thread -----

    def _run(self) -> None:
        while not self._closing:
            self._admit()
            for seq in list(self._active):
                self._drop_cancelled()
                if seq in self._active and not self._closing:
                    self._step_safely(seq)

    def _admit(self) -> None:
        """Take new sequences; block (briefly, so closing is seen) when there is nothing to do."""
        try:
            while True:
                block = not self._active
                seq = self._incoming.get(block=block, timeout=IDLE_POLL_S if block else None)
                if seq is None:
                    return
                self._active.append(seq)
        except queue.Empty:
            return

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._active if s.cancelled]:
            self._free(seq)

    def _free(self, seq: _Sequence) -> None:
        seq.kv = None
        if seq in self._active:
            self._active.remove(seq)

    def _step_safely(self, seq: _Sequence) -> None:
        try:
            with seq.lock:
                if seq.cancelled:
                    return  # cancelled since the last check; dropped before the next step
                self._step(seq)
        except Exception as exc:  # noqa: BLE001 - CUDA OOM and the like end this sequence, not the worker
            log.exception("generation failed (request %s)", seq.generation.request_id)
            self._free(seq)
            seq.generation.deliver_threadsafe(TokenEvent(None, "error", error=f"{type(exc).__name__}: {exc}"))

    def _step(self, seq: _Sequence) -> None:
        """One prompt chunk, or one new token."""
        if seq.kv is None:
            seq.kv = self.model.new_kv(len(seq.prompt) + min(seq.params.max_new_tokens, INITIAL_OUTPUT_ROOM))
        if seq.computed < len(seq.prompt):
            chunk = seq.prompt[seq.computed : seq.computed + PREFILL_CHUNK]
            logits = self.model(torch.tensor(chunk, dtype=torch.long), seq.kv)
            seq.computed += len(chunk)
            if seq.computed < len(seq.prompt):
                return
        else:
            logits = self.model(torch.tensor(seq.output[-1:], dtype=torch.long), seq.kv)
        if seq.matcher is None and seq.params.constraint is not None:
            seq.matcher = seq.params.constraint.start()
        token = sample(logits[-1], seq.params, seq.generator, seq.matcher)
        if seq.matcher is not None:
            seq.matcher.consume(token)
        seq.output.append(token)
        self._tokens_generated += 1
        reason = self._finish_reason(seq, token)
        if reason is not None:
            self._free(seq)
            log.debug("request %s: %d tokens, finished (%s)", seq.generation.request_id, len(seq.output), reason)
        if not seq.generation.deliver_threadsafe(TokenEvent(token, reason)) and reason is None:
            self._free(seq)

    def _finish_reason(self, seq: _Sequence, token: int) -> FinishReason | None:
        if token in seq.params.stop_token_ids:
            return "stop"
        if len(seq.output) >= seq.params.max_new_tokens:
            return "length"
        if len(seq.prompt) + len(seq.output) >= self.info.context_length:
            return "context"
        return None


def _drain(q: queue.Queue[_Sequence | None]) -> list[_Sequence]:
    items: list[_Sequence] = []
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)
