"""One sequence on the MLX model: prefill what the cache lacks, then one token at a time.

The semantics are the paged engine's (engine/paged/scheduler.py `finish_reason`): the stop token
is yielded as the last token; then `max_new_tokens`; then the context limit (prompt + output
reaching it). Sampling is engine/sampling.py's, on the same per-sequence seeded generator, so a
seed gives the same tokens here as on the paged engine for the same logits. Greedy decoding runs
one step ahead: the next forward pass is queued from the argmax before the host reads it (MLX
evaluates lazily and `async_eval` starts the work), so the GPU does not wait for Python.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
import torch

from codexpc.engine.api import FinishReason, SamplingParams, TokenEvent
from codexpc.engine.mlx.kv_cache import GROW_STEP, SequenceCache
from codexpc.engine.mlx.model import Transformer
from codexpc.engine.sampling import sample
from codexpc.engine.threaded_generation import ThreadedGeneration

# Prompt tokens per forward pass: bounds a prefill's activations (and its score matrices), and
# is how often a long prefill looks at a cancel.
PREFILL_CHUNK = 512


@dataclass
class Job:
    """A submitted sequence as the worker sees it."""

    request_id: str
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator  # the sequence's own: its seed, its draws
    generation: ThreadedGeneration  # the daemon's side: tokens go there
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, token: int, reason: FinishReason | None) -> bool:
        """Hand a token to the daemon; False when nobody listens any more."""
        return self.generation.deliver_threadsafe(TokenEvent(token, reason))


def finish_reason(token: int, n_output: int, n_total: int, params: SamplingParams,
                  limit: int) -> FinishReason | None:
    """Why the sequence stops after this token, in the paged engine's order."""
    if token in params.stop_token_ids:
        return "stop"
    if n_output >= params.max_new_tokens:
        return "length"
    if n_total >= limit:
        return "context"
    return None


def prefill(model: Transformer, cache: SequenceCache, tokens: Sequence[int],
            cancelled: threading.Event) -> mx.array | None:
    """Compute `tokens` after the cache's; the last one's logits [1, V], or None if cancelled."""
    logits = None
    for c0 in range(0, len(tokens), PREFILL_CHUNK):
        if cancelled.is_set():
            return None
        logits = model(mx.array(list(tokens[c0 : c0 + PREFILL_CHUNK])), cache)
        mx.eval(logits, *cache.arrays())  # one chunk at a time: its activations go before the next
    assert logits is not None, "prefill of no tokens"
    return logits


def run(model: Transformer, cache: SequenceCache, job: Job, limit: int) -> int:
    """Generate for `job` on a cache that holds a prefix of its prompt; the tokens generated.

    On return `cache.tokens` names exactly the tokens whose K/V the cache holds (the prompt and
    the output, less the last token unless a step ran ahead of it), for the next turn to match.
    """
    prompt, params = job.prompt, job.params
    cache.reserve(len(prompt) + min(params.max_new_tokens, GROW_STEP))
    output: list[int] = []
    try:
        logits = prefill(model, cache, prompt[cache.length :], job.cancelled)
        if logits is None:
            return 0
        greedy = params.temperature == 0
        y = _choose(logits, params, job.generator)
        while True:
            n_out, n_total = len(output) + 1, len(prompt) + len(output) + 1
            ahead = None
            # The next step is queued before this token is read, unless this one ends the sequence
            # for a reason known in advance (a stop token wastes that one step).
            if greedy and n_out < params.max_new_tokens and n_total < limit:
                ahead = model(y.reshape(1), cache)
                ahead_y = mx.argmax(ahead[-1])
                mx.async_eval(ahead_y)
            token = int(y.item())  # type: ignore[arg-type]  # an integer array's item is an int
            output.append(token)
            reason = finish_reason(token, n_out, n_total, params, limit)
            if job.cancelled.is_set() or not job.emit(token, reason) or reason is not None:
                return len(output)
            if ahead is None:
                logits = model(mx.array([token]), cache)
                y = _choose(logits, params, job.generator)
            else:
                y = ahead_y
    finally:
        cache.tokens = (prompt + output)[: cache.length]


def _choose(logits: mx.array, params: SamplingParams, generator: torch.Generator) -> mx.array:
    """The next token from logits [1, V], as a 0-d MLX array (greedy stays lazy on the device)."""
    if params.temperature == 0:
        return mx.argmax(logits[-1])
    row = torch.from_numpy(np.array(logits[-1], copy=True))  # 201k floats: small next to a step
    return mx.array(sample(row, params, generator))
