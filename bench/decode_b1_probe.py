"""Probes for batch-1 decode's next steps (issue 6 misses 500 tok/s there): measurements only,
nothing here is wired into the engine.

    python bench/decode_b1_probe.py

- dense: the GEMV of codexpc/engine/kernels/dense_gemv_triton.py (one token) against cuBLAS
  (F.linear) at the qkv and out shapes of gpt-oss-20b, under CUDA graphs, with a tile sweep.
- norm: fused.add_rmsnorm at one token (with the MoE's four slots) at 4, 8 and 16 warps: the
  49 launches a step are latency-bound, not bandwidth-bound.
Prints one table last. Nsight Compute's view of the MoE GEMV comes from bench/ncu_moe.py.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import graph_ms  # noqa: E402
from codexpc.engine.kernels.dense_gemv_triton import launch_gemv  # noqa: E402
from codexpc.engine.kernels.fused_triton import _add_rmsnorm_kernel  # noqa: E402

DEV = torch.device("cuda")
TABLE: list[str] = []


def record(line: str) -> None:
    TABLE.append(line)
    print(line, flush=True)


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
    return launch_gemv(x, w, b, (bn, bk, warps))


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
