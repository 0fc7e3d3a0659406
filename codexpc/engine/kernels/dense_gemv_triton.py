"""One token through a bf16 linear layer: a plain Triton GEMV (batch-1 decode's qkv and out).

cuBLAS answers a [1, K] @ [K, N] product with a split-K kernel and, for the out projection, a
second kernel to reduce the splits. Here each program takes a few weight rows over the whole K,
sums in fp32 and adds the bias: one launch. H100, weights not in L2 (bench/decode_b1_probe.py):
out [2880 x 4096] 14.2 us against cuBLAS's 17.0, qkv [5120 x 2880] 15.9 against 16.6.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, b_ptr, y_ptr, stride_w, K: tl.constexpr, N: tl.constexpr, BN: tl.constexpr,
                 BK: tl.constexpr):
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    ok = rows < N
    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + tl.arange(0, BK)
        x = tl.load(x_ptr + kk, mask=kk < K, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + rows[:, None] * stride_w + kk[None, :], mask=ok[:, None] & (kk[None, :] < K), other=0.0)
        acc += w.to(tl.float32) * x[None, :]
    y = tl.sum(acc, axis=1) + tl.load(b_ptr + rows, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + rows, y.to(y_ptr.dtype.element_ty), mask=ok)


# (rows per program, K step, warps): the probe's best on an H100 for both shapes' neighbourhood.
TILES = (4, 1024, 4)


def launch_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x [1, K] -> [1, N] in x's dtype."""
    n, k = weight.shape
    assert x.shape == (1, k) and x.stride(1) == 1 and weight.stride(1) == 1
    y = torch.empty(1, n, dtype=x.dtype, device=x.device)
    bn, bk, warps = TILES
    _gemv_kernel[(triton.cdiv(n, bn),)](x, weight, bias, y, weight.stride(0), K=k, N=n, BN=bn, BK=bk,
                                        num_warps=warps)
    return y
