"""Triton kernel of the router's top-k and softmax over the chosen (see routing.py for the reference)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.pdl import launch_args, wait_for_inputs


@triton.jit
def _route_kernel(logits_ptr, ids_ptr, weights_ptr, stride_l, E: tl.constexpr, BLOCK_E: tl.constexpr,
                  K: tl.constexpr, BLOCK_K: tl.constexpr, PDL: tl.constexpr = False):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_E)
    kk = tl.arange(0, BLOCK_K)
    wait_for_inputs(PDL)
    logit = tl.load(logits_ptr + row * stride_l + cols, mask=cols < E, other=float("-inf")).to(tl.float32)
    best = tl.max(logit, axis=0)
    ids = tl.zeros([BLOCK_K], dtype=tl.int64)
    w = tl.zeros([BLOCK_K], dtype=tl.float32)
    for j in tl.static_range(K):  # the k largest, best first; ties go to the lower expert id
        top = tl.max(logit, axis=0)
        idx = tl.min(tl.where(logit == top, cols, BLOCK_E), axis=0)
        ids = tl.where(kk == j, idx.to(tl.int64), ids)
        w = tl.where(kk == j, tl.exp(top - best), w)
        logit = tl.where(cols == idx, float("-inf"), logit)
    # gpt-oss quirk: softmax over the k chosen logits only.
    tl.store(ids_ptr + row * K + kk, ids, mask=kk < K)
    tl.store(weights_ptr + row * K + kk, w / tl.sum(w, axis=0), mask=kk < K)


def launch_route(logits: torch.Tensor, k: int, pdl: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    t, e = logits.shape
    ids = torch.empty(t, k, dtype=torch.int64, device=logits.device)
    weights = torch.empty(t, k, dtype=torch.float32, device=logits.device)
    _route_kernel[(t,)](logits, ids, weights, logits.stride(0), E=e, BLOCK_E=triton.next_power_of_2(e), K=k,
                        BLOCK_K=triton.next_power_of_2(k), num_warps=1, **launch_args(logits, pdl))
    return ids, weights
