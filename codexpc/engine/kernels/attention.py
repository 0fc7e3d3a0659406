"""Attention over the paged KV cache, with sinks and the sliding window: reference and Triton.

One call covers a whole step: every sequence brings its new queries (a prefill chunk, or one
decode token), attends to its cached keys plus its new ones, all read through its block table.

Shapes: T new tokens of all sequences together, B sequences, KV heads, QM query heads per KV
head, D head dim; a layer's cache is k, v [num_blocks, block_size, KV, D].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from codexpc.engine.model import attention_reference

if TYPE_CHECKING:
    from codexpc.engine.paged.kernel_plan import KernelPlan


@dataclass(frozen=True)
class PagedBatch:
    """Where each sequence's queries and keys are. Built once per step by the model runner."""

    query_start: torch.Tensor  # [B + 1] int32: sequence i's new tokens are rows [qs[i], qs[i+1])
    context_lens: torch.Tensor  # [B] int32: tokens with KV once this step's are written
    block_tables: torch.Tensor  # [B, max_blocks] int32 (unused entries may hold anything)
    slot_mapping: torch.Tensor  # [T] int64: cache slot (block * block_size + offset) of each new token
    max_query_len: int  # the longest run of new tokens in the batch (sizes the grid)
    # Host copies for the reference path (no device sync needed to read them).
    query_start_host: tuple[int, ...] = ()
    context_lens_host: tuple[int, ...] = ()


def write_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             slots: torch.Tensor) -> None:
    """k, v [T, KV, D] into their cache slots."""
    kv, d = k_cache.shape[-2:]
    k_cache.view(-1, kv, d).index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.view(-1, kv, d).index_copy_(0, slots, v.to(v_cache.dtype))


def gather_kv(cache: torch.Tensor, table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` positions of one sequence, [length, KV, D], through its block table."""
    block_size = cache.shape[1]
    blocks = table[: -(-length // block_size)].long()
    return cache[blocks].flatten(0, 1)[:length]


def paged_attention_reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                              sinks: torch.Tensor, batch: PagedBatch, window: int) -> torch.Tensor:
    """q [T, KV * QM, D] -> [T, KV * QM * D], one sequence at a time with the model's maths."""
    n_kv, d = k_cache.shape[-2:]
    outs = []
    for i, length in enumerate(batch.context_lens_host):
        q0, q1 = batch.query_start_host[i], batch.query_start_host[i + 1]
        start = length - (q1 - q0)  # position of the first new token
        k_start = max(0, start - window + 1) if window else 0
        keys = gather_kv(k_cache, batch.block_tables[i], length)[k_start:]
        values = gather_kv(v_cache, batch.block_tables[i], length)[k_start:]
        qi = q[q0:q1].reshape(q1 - q0, n_kv, -1, d)
        outs.append(attention_reference(qi, keys, values, sinks, start, k_start, window))
    return torch.cat(outs, dim=0)


def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, sinks: torch.Tensor,
                    batch: PagedBatch, window: int, pdl: bool = False) -> torch.Tensor:
    """The Triton path: same function as `paged_attention_reference`."""
    from codexpc.engine.kernels.attention_triton import launch_attention  # needs triton

    return launch_attention(q, k_cache, v_cache, sinks, batch, window, pdl)


def attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, sinks: torch.Tensor,
              batch: PagedBatch, window: int, plan: KernelPlan) -> torch.Tensor:
    """The step's attention as `plan` runs it: the kernel, or the reference."""
    if not plan.kernels:
        return paged_attention_reference(q, k_cache, v_cache, sinks, batch, window)
    return paged_attention(q, k_cache, v_cache, sinks, batch, window, plan.pdl)
