"""The MoE kernels side by side on one GPU, and where a decode step's time goes.

    python bench/moe_scaled_dot.py [--parts check,moe,profile] [--out DIR]

check:   every MoE path against the plain reference at 1 to 512 tokens (relative error).
moe:     one MoE layer of gpt-oss-20b's shapes (random MXFP4 experts) under a CUDA graph, v4's
         kernel against v5's at each size: the GEMV pair's portable path against its PTX one
         (1-8 tokens; v6's GEMV, not v4's, which is gone), the row blocks against the scaled-dot
         kernels (16-512), the new one with a tile sweep.
profile: decode steps of the whole engine (random 20b weights made on the GPU, CUDA graphs) at
         batch 1 and 64 under torch.profiler, v4's path and v5's: GPU time per step by kernel,
         against the wall time.
Prints one table last.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import graph_ms, random_experts  # noqa: E402
from bench.fast_engine_parts import CONFIG, DEV, Driver, profile_steps, rand_tokens, random_model  # noqa: E402
from codexpc.engine.kernels import fused, moe_gemv_triton, moe_scaled_triton  # noqa: E402
from codexpc.engine.kernels import moe_mxfp4 as moe_module  # noqa: E402
from codexpc.engine.kernels import moe_mxfp4_triton as rows_module  # noqa: E402
from codexpc.engine.kernels.moe_mxfp4 import moe_mxfp4_slots, moe_reference  # noqa: E402
from codexpc.engine.kernels.moe_scaled_triton import ScaledTiles  # noqa: E402
from codexpc.engine.paged import model_runner  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget  # noqa: E402

TABLE: list[str] = []
SWEEP = [ScaledTiles(*shape) for shape in
         ((64, 256, 4, 3), (128, 128, 8, 3), (128, 128, 4, 3), (64, 128, 4, 4), (128, 256, 8, 3), (64, 512, 4, 2),
          (256, 128, 8, 3), (128, 64, 4, 5))]
OUT: Path | None = None


def record(line: str) -> None:
    TABLE.append(line)
    print(line, flush=True)


# The engine's decode path as of v4 and as now: (name, GEMV PTX decode, many-token kernel,
# one-launch expert order, one-launch router).
VERSIONS = (("v4", False, "rows", False, 0), ("v5", True, "scaled", True, fused.ROUTER_MAX_TOKENS))


def use_version(asm: bool, many: str, order: bool, router_max: int) -> None:
    moe_gemv_triton.ASM_DECODE = asm
    moe_module.MANY_TOKENS_KERNEL = many
    moe_module.ORDER_KERNEL = order
    fused.ROUTER_MAX_TOKENS = router_max


def routing(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    c = CONFIG
    x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
    ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
    return x, ids, torch.softmax(torch.randn(t, 4, device=DEV), -1)


def check() -> None:
    w = random_experts(CONFIG)
    for t in (1, 3, 8, 9, 64, 512):
        x, ids, wts = routing(t)
        ref = moe_reference(x, ids, wts, w).float()
        errs = []
        for version, *knobs in VERSIONS:
            use_version(*knobs)
            out = moe_mxfp4_slots(x, ids, wts, w).sum(1)
            errs.append(f"{version} {((out - ref).norm() / ref.norm()).item():.1e}")
        record(f"check T={t:<4} rel err: " + ", ".join(errs))
    use_version(*VERSIONS[-1][1:])


def expert_bytes(w) -> int:  # type: ignore[no-untyped-def]
    return w.w1_blocks[0].numel() + w.w1_scales[0].numel() + w.w2_blocks[0].numel() + w.w2_scales[0].numel()


def bench_moe() -> None:
    """Up to 8 tokens the GEMV pair, bit placement against the PTX decode; beyond, the row
    blocks against the scaled-dot kernels. Each new kernel with a tile sweep (the best is kept)."""
    w = random_experts(CONFIG)
    for t in (1, 2, 4, 8, 16, 64, 256, 512):
        x, ids, wts = routing(t)
        used = len(torch.unique(ids)) * expert_bytes(w)
        ref = moe_reference(x, ids, wts, w).float()
        use_version(*VERSIONS[0][1:])
        base = graph_ms(partial(moe_mxfp4_slots, x, ids, wts, w))
        if t <= moe_module.GEMV_MAX_TOKENS:
            gemv_sweep(t, x, ids, wts, w, ref, used, base)
            continue
        use_version(*VERSIONS[-1][1:])
        best = (1e9, None)
        for up in SWEEP:
            for down in SWEEP:
                if up.bn != down.bn:
                    continue
                moe_scaled_triton.UP_TILES, moe_scaled_triton.DOWN_TILES = up, down
                try:
                    err = ((moe_mxfp4_slots(x, ids, wts, w).sum(1) - ref).norm() / ref.norm()).item()
                    ms = graph_ms(partial(moe_mxfp4_slots, x, ids, wts, w))
                except Exception as e:  # noqa: BLE001 - a tile the compiler refuses is a result too
                    print(f"T={t} {up} {down}: {type(e).__name__}: {str(e)[:120]}", flush=True)
                    continue
                print(f"T={t} scaled up {up} down {down}: {ms * 1e3:.1f} us err {err:.1e}", flush=True)
                if ms < best[0] and err < 2e-2:
                    best = (ms, (up, down))
        ms, tiles = best
        if tiles is not None:
            moe_scaled_triton.UP_TILES, moe_scaled_triton.DOWN_TILES = tiles
        record(f"MoE T={t:<4} row blocks {base * 1e3:7.1f} us ({used / base / 1e6:5.0f} GB/s) | "
               f"scaled {ms * 1e3:7.1f} us ({used / ms / 1e6:5.0f} GB/s) x{base / ms:.2f} tiles {tiles}")
    use_version(*VERSIONS[-1][1:])


def gemv_sweep(t, x, ids, wts, w, ref, used, base) -> None:  # type: ignore[no-untyped-def]
    """The GEMV pair with its PTX against its portable path (no inline PTX), at the engine's
    tiles (bench/moe_gemv_probe.py sweeps them)."""
    moe_gemv_triton.ASM_DECODE = True
    err = ((moe_mxfp4_slots(x, ids, wts, w).sum(1) - ref).norm() / ref.norm()).item()
    ms = graph_ms(partial(moe_mxfp4_slots, x, ids, wts, w))
    record(f"MoE T={t:<4} GEMV portable {base * 1e3:7.1f} us | GEMV PTX {ms * 1e3:7.1f} us "
           f"({used / ms / 1e6:5.0f} GB/s, err {err:.1e}) x{base / ms:.2f}")
    moe_gemv_triton.ASM_DECODE = False


def profile_decode() -> None:
    model = random_model(CONFIG)
    model_runner.WARMUP_TOKENS = (1,)
    budget = CacheBudget(16, 3200, 64, 8192, bytes_per_block=0)
    for version, *knobs in VERSIONS:
        use_version(*knobs)
        d = Driver(model, budget)
        for n in (1, 64):
            seqs = [d.add(rand_tokens(256), 10_000) for _ in range(n)]
            while any(s.num_output_tokens == 0 for s in seqs):
                d.step()
            for _ in range(3):
                d.step()
            torch.cuda.synchronize()
            steps = 20
            t0 = time.perf_counter()
            for _ in range(steps):
                d.step()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / steps * 1e3
            per_kernel, launches, prof = profile_steps(d, steps)
            gpu = sum(per_kernel.values())
            record(f"profile {version} batch {n}: wall {wall:.2f} ms/step ({n / wall * 1e3:.0f} tok/s), "
                   f"kernels {gpu:.2f} ms/step, {sum(launches.values())} launches/step")
            for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:14]:
                record(f"    {ms * 1e3:8.1f} us  x{launches[name]:<4} {name}")
            if OUT is not None:
                prof.export_chrome_trace(str(OUT / f"trace-{version}-{n}.json"))
            d.sched.finish_all(seqs)
        del d
        gc.collect()
        torch.cuda.empty_cache()
    use_version(*VERSIONS[-1][1:])


def main() -> int:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="check,moe,profile")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    OUT = args.out
    parts = set(args.parts.split(","))
    started = time.time()
    if "check" in parts:
        check()
    if "moe" in parts:
        bench_moe()
    if "profile" in parts:
        profile_decode()
    print(f"# {torch.cuda.get_device_name()}, total {time.time() - started:.0f} s, "
          f"rows {rows_module.default_tiles(16)}")
    print("\n".join(TABLE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
