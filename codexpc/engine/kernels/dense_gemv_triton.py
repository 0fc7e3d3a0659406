"""A few tokens through a bf16 linear layer: a plain Triton GEMV (batch-1 decode's qkv and out,
and the router's 32 x 2880 logits for decode batches).

cuBLAS answers a [1, K] @ [K, N] product with a split-K kernel and, for the out projection, a
second kernel to reduce the splits. Here each program takes a few weight rows of one token over
the whole K, sums in fp32 and adds the bias: one launch. H100, weights not in L2
(bench/decode_b1_probe.py): out [2880 x 4096] 14.2 us against cuBLAS's 17.0, qkv
[5120 x 2880] 15.9 against 16.6.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.pdl import launch_args, wait_for_inputs


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, b_ptr, y_ptr, stride_x, stride_w, stride_y, K: tl.constexpr, N: tl.constexpr,
                 BN: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr = False):
    token = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    ok = rows < N
    kk = tl.arange(0, BK)
    # The first K step's weights are loaded before waiting for the kernel before (pdl.py): with
    # programmatic launch they stream in while it finishes. Each later step's weights are loaded
    # before the step before is summed (with both, batch-1 decode went from 2.303 to 2.172 ms a
    # step on an H100, bench/results/moe_gemv_probe-v6-lookahead-h100.txt).
    w = tl.load(w_ptr + rows[:, None] * stride_w + kk[None, :], mask=ok[:, None] & (kk[None, :] < K), other=0.0)
    wait_for_inputs(PDL)
    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kn = k0 + BK + tl.arange(0, BK)  # the next step: masked past K
        w_next = tl.load(w_ptr + rows[:, None] * stride_w + kn[None, :], mask=ok[:, None] & (kn[None, :] < K),
                         other=0.0)
        kk = k0 + tl.arange(0, BK)
        x = tl.load(x_ptr + token * stride_x + kk, mask=kk < K, other=0.0).to(tl.float32)
        acc += w.to(tl.float32) * x[None, :]
        w = w_next
    y = tl.sum(acc, axis=1) + tl.load(b_ptr + rows, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + token * stride_y + rows, y.to(y_ptr.dtype.element_ty), mask=ok)


# (rows per program, K step, warps): the probe's best on an H100 for qkv and out at one token.
TILES = (4, 1024, 4)


def launch_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                tiles: tuple[int, int, int] | None = None, pdl: bool = False) -> torch.Tensor:
    """x [T, K] -> x @ weight.T + bias [T, N] in x's dtype (the sums in fp32, rounded once)."""
    n, k = weight.shape
    t = x.shape[0]
    assert x.shape[1] == k and x.stride(1) == 1 and weight.stride(1) == 1
    y = torch.empty(t, n, dtype=x.dtype, device=x.device)
    bn, bk, warps = tiles or TILES
    _gemv_kernel[(triton.cdiv(n, bn), t)](x, weight, bias, y, x.stride(0), weight.stride(0), y.stride(0), K=k, N=n,
                                          BN=bn, BK=bk, num_warps=warps, **launch_args(x, pdl))
    return y
