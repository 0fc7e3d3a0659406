"""Probes for batch-1 decode's next steps (issue 6 misses 500 tok/s there): measurements only,
nothing here is wired into the engine.

    python bench/decode_b1_probe.py

- dense: a plain Triton GEMV (one token, bf16 weights, fp32 sums) against cuBLAS (F.linear) at
  the qkv and out shapes of gpt-oss-20b, under CUDA graphs: does our own GEMV pay?
- norm: fused.add_rmsnorm at one token (with the MoE's four slots) at 4, 8 and 16 warps: the
  49 launches a step are latency-bound, not bandwidth-bound.
Prints one table last. Nsight Compute's view of the MoE GEMV comes from bench/ncu_moe.py.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import graph_ms  # noqa: E402
from codexpc.engine.kernels.fused_triton import _add_rmsnorm_kernel  # noqa: E402

DEV = torch.device("cuda")
TABLE: list[str] = []


def record(line: str) -> None:
    TABLE.append(line)
    print(line, flush=True)


@triton.jit
def _gemv_bf16_kernel(x_ptr, w_ptr, b_ptr, y_ptr, stride_w, K: tl.constexpr, N: tl.constexpr, BN: tl.constexpr,
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


def gemv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, bn: int, bk: int, warps: int) -> torch.Tensor:
    n, k = w.shape
    y = torch.empty(1, n, dtype=x.dtype, device=x.device)
    _gemv_bf16_kernel[(triton.cdiv(n, bn),)](x, w, b, y, w.stride(0), K=k, N=n, BN=bn, BK=bk, num_warps=warps)
    return y


def run_all(fn, ws: list[torch.Tensor]) -> None:  # type: ignore[no-untyped-def]
    for w in ws:  # four weight copies in turn: the L2 (50 MB) cannot hold them
        fn(w)


def dense_shape(name: str, n: int, k: int) -> None:
    x = torch.randn(1, k, device=DEV, dtype=torch.bfloat16)
    ws = [torch.randn(n, k, device=DEV, dtype=torch.bfloat16) * k ** -0.5 for _ in range(4)]
    b = torch.randn(n, device=DEV, dtype=torch.bfloat16) * 0.1
    ref = torch.nn.functional.linear(x, ws[0], b).float()
    nbytes = n * k * 2
    cublas = graph_ms(partial(run_all, partial(torch.nn.functional.linear, x, bias=b), ws)) / 4
    best: tuple[float, tuple[int, int, int] | None] = (1e9, None)
    for bn in (4, 8, 16, 32):
        for bk in (256, 512, 1024):
            for warps in (2, 4, 8):
                if bn * bk > 16384:
                    continue
                one = partial(gemv_w, x, b, bn, bk, warps)
                err = ((one(ws[0]).float() - ref).norm() / ref.norm()).item()
                ms = graph_ms(partial(run_all, one, ws)) / 4
                print(f"{name} triton BN={bn} BK={bk} warps={warps}: {ms * 1e3:.1f} us err {err:.1e}", flush=True)
                if ms < best[0] and err < 1e-2:
                    best = (ms, (bn, bk, warps))
    ms, tiles = best
    record(f"{name} [{n} x {k}] one token: cuBLAS {cublas * 1e3:6.1f} us ({nbytes / cublas / 1e6:5.0f} GB/s) | "
           f"Triton GEMV {ms * 1e3:6.1f} us ({nbytes / ms / 1e6:5.0f} GB/s) x{cublas / ms:.2f} {tiles}")


def gemv_w(x: torch.Tensor, b: torch.Tensor, bn: int, bk: int, warps: int, w: torch.Tensor) -> torch.Tensor:
    return gemv(x, w, b, bn, bk, warps)


def bench_dense() -> None:
    dense_shape("qkv", 5120, 2880)
    dense_shape("out", 2880, 4096)


def bench_norm() -> None:
    h = 2880
    x = torch.randn(1, h, device=DEV, dtype=torch.bfloat16)
    y = torch.randn(1, 4, h, device=DEV)
    scale = torch.rand(h, device=DEV) + 0.5
    total, out = torch.empty_like(x), torch.empty_like(x)
    for warps in (4, 8, 16):
        def launch(warps: int = warps) -> None:
            _add_rmsnorm_kernel[(1,)](x, y, scale, total, out, x.stride(0), y.stride(0), y.stride(1), total.stride(0),
                                      out.stride(0), 1e-5, H=h, BLOCK=4096, HAS_Y=True, J=4, num_warps=warps)
        ms = graph_ms(lambda: [launch() for _ in range(49)]) / 49
        record(f"add_rmsnorm one token, 4 slots, {warps:2d} warps: {ms * 1e3:5.2f} us a launch (graph of 49)")


def main() -> int:
    bench_norm()
    bench_dense()
    print(f"# {torch.cuda.get_device_name()}")
    print("\n".join(TABLE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
