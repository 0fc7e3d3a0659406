"""Triton kernel of paged attention with sinks and the sliding window (see attention.py).

One program takes BLOCK_Q new tokens of one sequence and all QM query heads that share one KV
head (BLOCK_Q * QM rows: each K/V tile read serves QM heads), and walks that sequence's keys
through its block table with an online softmax. The sink enters as the softmax's starting
point: running max = sink logit, running sum = exp(sink - max) = 1, accumulator = 0, which is
the extra column whose value is zero, and keeps rows that see no key finite.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.pdl import launch_args, wait_for_inputs

if TYPE_CHECKING:
    from codexpc.engine.kernels.attention import PagedBatch

LOG2E = 1.4426950408889634
_LOG2E = tl.constexpr(LOG2E)  # kernels may read only constexpr globals


# The block-table width changes every step: specializing on it (Triton's default for integer
# arguments: divisible by 16 or not) would compile a new variant in the middle of a request.
@triton.jit(do_not_specialize=["stride_table"])
def _paged_attention_kernel(
    q_ptr, k_ptr, v_ptr, sinks_ptr, o_ptr, qstart_ptr, ctx_ptr, table_ptr,
    stride_qt, stride_ot, stride_table, scale_log2,
    WINDOW: tl.constexpr, KV: tl.constexpr, QM: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
):
    seq, qt, kvh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    q0 = tl.load(qstart_ptr + seq)
    n_new = tl.load(qstart_ptr + seq + 1) - q0
    if qt * BLOCK_Q >= n_new:
        return
    length = tl.load(ctx_ptr + seq)
    first = length - n_new  # position of the sequence's first new token
    rows = tl.arange(0, BLOCK_Q * QM)
    tok = qt * BLOCK_Q + rows // QM  # index among this sequence's new tokens
    head = kvh * QM + rows % QM
    row_ok = tok < n_new
    q_pos = first + tok  # [M]
    dd = tl.arange(0, D)
    q = tl.load(q_ptr + (q0 + tok)[:, None].to(tl.int64) * stride_qt + head[:, None] * D + dd[None, :],
                mask=row_ok[:, None], other=0.0)  # [M, D]
    # gpt-oss quirk: the sink logit per head is an extra softmax column with value zero.
    m_i = tl.load(sinks_ptr + head).to(tl.float32) * _LOG2E  # [M] in log2 units
    l_i = tl.full([BLOCK_Q * QM], 1.0, dtype=tl.float32)
    acc = tl.zeros([BLOCK_Q * QM, D], dtype=tl.float32)
    last = tl.minimum(first + (qt + 1) * BLOCK_Q, length)  # one past the last key any row sees
    lo = first * 0
    if WINDOW > 0:
        # gpt-oss quirk: sliding layers see exactly `window` positions, the query's own included.
        lo = tl.maximum(first + qt * BLOCK_Q - WINDOW + 1, 0) // BLOCK_N * BLOCK_N
    table = table_ptr + seq.to(tl.int64) * stride_table
    for n0 in range(lo, last, BLOCK_N):
        k_pos = n0 + tl.arange(0, BLOCK_N)  # [N]
        k_ok = k_pos < last
        page = tl.load(table + k_pos // PAGE, mask=k_ok, other=0).to(tl.int64)
        slot = page * PAGE + k_pos % PAGE
        kv_off = slot[:, None] * (KV * D) + kvh * D + dd[None, :]  # [N, D]
        k = tl.load(k_ptr + kv_off, mask=k_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale_log2  # [M, N]
        allowed = (k_pos[None, :] <= q_pos[:, None]) & k_ok[None, :]
        if WINDOW > 0:
            allowed &= k_pos[None, :] > q_pos[:, None] - WINDOW
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + kv_off, mask=k_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(o_ptr + (q0 + tok)[:, None].to(tl.int64) * stride_ot + head[:, None] * D + dd[None, :],
             out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])


def _block_q(max_query_len: int, q_per_kv: int) -> int:
    """Tokens per program: enough rows for the tensor cores (16+), no more than the batch needs."""
    if max_query_len == 1:
        return max(1, 16 // q_per_kv)
    return max(16, 128 // q_per_kv) if max_query_len >= 64 else max(1, 64 // q_per_kv)


def launch_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, sinks: torch.Tensor,
                     batch: PagedBatch, window: int, pdl: bool = False) -> torch.Tensor:
    """q [T, KV * QM, D] -> [T, KV * QM * D]. The new tokens' K/V must already be in the cache."""
    t, heads, d = q.shape
    _, page, n_kv, _ = k_cache.shape
    qm = heads // n_kv
    if batch.max_query_len == 1:
        splits = decode_splits(batch.context_lens.shape[0], n_kv)
        if splits > 1:
            return launch_decode_split(q, k_cache, v_cache, sinks, batch, window, splits, pdl)
    out = torch.empty(t, heads * d, dtype=q.dtype, device=q.device)
    block_q = _block_q(batch.max_query_len, qm)
    grid = (batch.context_lens.shape[0], triton.cdiv(batch.max_query_len, block_q), n_kv)
    _paged_attention_kernel[grid](
        q, k_cache, v_cache, sinks, out, batch.query_start, batch.context_lens, batch.block_tables,
        q.stride(0), out.stride(0), batch.block_tables.stride(0), LOG2E / math.sqrt(d),
        WINDOW=int(window), KV=n_kv, QM=qm, D=d, PAGE=page, BLOCK_Q=block_q, BLOCK_N=64, num_warps=4, num_stages=2,
    )
    return out


# Flash-decoding: with one query token per sequence and few sequences, one program per (sequence,
# KV head) is too few programs (8 at batch 1) to stream a long context at the memory's rate.
# Each (sequence, KV head) is then split over the keys into SPLITS programs that write unnormalized
# partial results; a second kernel merges them and adds the sink. SPLITS is fixed per batch size,
# so a CUDA graph captures it; each split's share of keys is worked out in the kernel.
@triton.jit(do_not_specialize=["stride_table"])
def _decode_split_kernel(
    q_ptr, k_ptr, v_ptr, acc_ptr, m_ptr, l_ptr, qstart_ptr, ctx_ptr, table_ptr,
    stride_qt, stride_table, scale_log2,
    WINDOW: tl.constexpr, KV: tl.constexpr, QM: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SPLITS: tl.constexpr, PDL: tl.constexpr = False,
):
    seq, kvh, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    wait_for_inputs(PDL)
    q_row = tl.load(qstart_ptr + seq).to(tl.int64)
    length = tl.load(ctx_ptr + seq)
    lo = length * 0
    if WINDOW > 0:
        # gpt-oss quirk: sliding layers see exactly `window` positions, the query's own included.
        lo = tl.maximum(length - WINDOW, 0)
    chunk = tl.cdiv(tl.cdiv(length - lo, SPLITS), BLOCK_N) * BLOCK_N
    start = lo + split * chunk
    end = tl.minimum(start + chunk, length)  # keys [start, end): all at or before the query
    rows = tl.arange(0, BLOCK_M)
    row_ok = rows < QM
    head = kvh * QM + rows
    dd = tl.arange(0, D)
    q = tl.load(q_ptr + q_row * stride_qt + head[:, None] * D + dd[None, :], mask=row_ok[:, None], other=0.0)
    m_i = tl.full([BLOCK_M], -1e30, dtype=tl.float32)  # finite: a split with no key stays NaN-free
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    table = table_ptr + seq.to(tl.int64) * stride_table
    for n0 in range(start, end, BLOCK_N):
        k_pos = n0 + tl.arange(0, BLOCK_N)
        k_ok = k_pos < end
        page = tl.load(table + k_pos // PAGE, mask=k_ok, other=0).to(tl.int64)
        kv_off = (page * PAGE + k_pos % PAGE)[:, None] * (KV * D) + kvh * D + dd[None, :]  # [N, D]
        k = tl.load(k_ptr + kv_off, mask=k_ok[:, None], other=0.0)
        s = tl.where(k_ok[None, :], tl.dot(q, tl.trans(k)) * scale_log2, float("-inf"))  # [M, N]
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + kv_off, mask=k_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    part = (seq * SPLITS + split) * (KV * QM) + head  # [M] index into [B, SPLITS, heads]
    tl.store(m_ptr + part, m_i, mask=row_ok)
    tl.store(l_ptr + part, l_i, mask=row_ok)
    tl.store(acc_ptr + part[:, None] * D + dd[None, :], acc, mask=row_ok[:, None])


@triton.jit
def _decode_merge_kernel(acc_ptr, m_ptr, l_ptr, sinks_ptr, o_ptr, qstart_ptr, stride_ot,
                         HEADS: tl.constexpr, D: tl.constexpr, SPLITS: tl.constexpr, PDL: tl.constexpr = False):
    seq, head = tl.program_id(0), tl.program_id(1)
    wait_for_inputs(PDL)
    sp = tl.arange(0, SPLITS)
    part = (seq * SPLITS + sp) * HEADS + head  # [SPLITS]
    m_s = tl.load(m_ptr + part)
    # gpt-oss quirk: the sink logit per head is an extra softmax column with value zero.
    sink = tl.load(sinks_ptr + head).to(tl.float32) * _LOG2E
    m = tl.maximum(tl.max(m_s, axis=0), sink)
    w = tl.exp2(m_s - m)  # [SPLITS]
    total = tl.exp2(sink - m) + tl.sum(tl.load(l_ptr + part) * w, axis=0)
    dd = tl.arange(0, D)
    acc = tl.sum(tl.load(acc_ptr + part[:, None] * D + dd[None, :]) * w[:, None], axis=0)  # [D]
    q_row = tl.load(qstart_ptr + seq).to(tl.int64)
    tl.store(o_ptr + q_row * stride_ot + head * D + dd, (acc / total).to(o_ptr.dtype.element_ty))


# Programs wanted in flight: about two per SM of an H100 (132).
DECODE_PROGRAMS = 264
MAX_SPLITS = 32


def decode_splits(num_seqs: int, kv_heads: int) -> int:
    """Key splits per (sequence, KV head) for a decode step: 1 (no split) once the batch alone
    gives enough programs; else a power of two up to MAX_SPLITS."""
    splits = 1
    while splits < MAX_SPLITS and num_seqs * kv_heads * splits < DECODE_PROGRAMS // 2:
        splits *= 2
    return splits


def launch_decode_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, sinks: torch.Tensor,
                        batch: PagedBatch, window: int, splits: int, pdl: bool = False) -> torch.Tensor:
    """One new token per sequence: q [B, KV * QM, D] -> [B, KV * QM * D], keys split `splits` ways."""
    t, heads, d = q.shape
    _, page, n_kv, _ = k_cache.shape
    b = batch.context_lens.shape[0]
    acc = torch.empty(b, splits, heads, d, dtype=torch.float32, device=q.device)
    m = torch.empty(b, splits, heads, dtype=torch.float32, device=q.device)
    l_sum = torch.empty_like(m)
    out = torch.empty(t, heads * d, dtype=q.dtype, device=q.device)
    _decode_split_kernel[(b, n_kv, splits)](
        q, k_cache, v_cache, acc, m, l_sum, batch.query_start, batch.context_lens, batch.block_tables,
        q.stride(0), batch.block_tables.stride(0), LOG2E / math.sqrt(d),
        WINDOW=int(window), KV=n_kv, QM=heads // n_kv, D=d, PAGE=page, BLOCK_M=max(16, triton.next_power_of_2(heads // n_kv)),
        BLOCK_N=64, SPLITS=splits, num_warps=4, num_stages=2, **launch_args(q, pdl),
    )
    _decode_merge_kernel[(b, heads)](acc, m, l_sum, sinks, out, batch.query_start, out.stride(0),
                                     HEADS=heads, D=d, SPLITS=splits, num_warps=1, **launch_args(q, pdl))
    return out
