"""The MoE GEMV pair (1-8 tokens) on one GPU: v6 (packed f16 FMAs) against a baseline, and
where a batch-1 decode step's time goes.

    python bench/moe_gemv_probe.py [--parts check,gemv,profile] [--baseline FILE] [--layers N]

check:   the engine's GEMV pair against the plain reference at 1 to 8 tokens (relative error).
gemv:    the pair over N layers of gpt-oss-20b's shapes (random MXFP4 experts, a set per layer so
         the weights come from memory, not L2) under one CUDA graph; up and down swept over tiles
         apart, then the pair with the best of each; against --baseline (an older
         moe_gemv_triton.py, e.g. `git show 8bfaf40:codexpc/engine/kernels/moe_gemv_triton.py`)
         in the same run.
profile: decode steps of the whole engine at batch 1 (random 20b weights made on the GPU, CUDA
         graphs) in VARIANTS' plans (PDL, steps run ahead): wall time
         a step, the step's graph replayed alone, and the kernels under torch.profiler.
Prints one table last.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from collections import defaultdict
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import graph_ms, random_experts  # noqa: E402
from bench.fast_engine_parts import DEV, Driver, profile_steps, rand_tokens, random_model  # noqa: E402
from codexpc.engine.kernels import moe_gemv_triton as v6  # noqa: E402
from codexpc.engine.kernels.moe_mxfp4 import SWIGLU_ALPHA, ExpertWeights, moe_mxfp4_slots, moe_reference  # noqa: E402
from codexpc.engine.model_config import GPT_OSS_20B as CONFIG  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget  # noqa: E402
from codexpc.engine.paged.kernel_plan import KernelPlan  # noqa: E402

TABLE: list[str] = []
Tiles = v6.GemvTiles  # rows per program, K step, warps, look-ahead loads
PLAN = KernelPlan()
SHAPES = ((16, 512, 4), (16, 256, 2), (8, 512, 2), (16, 1024, 4), (64, 512, 8), (8, 256, 1))


def record(line: str) -> None:
    TABLE.append(line)
    print(line, flush=True)


def routing(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(t, CONFIG.hidden_size, device=DEV, dtype=torch.bfloat16)
    ids = torch.stack([torch.randperm(CONFIG.num_experts, device=DEV)[:4] for _ in range(t)])
    return x, ids, torch.softmax(torch.randn(t, 4, device=DEV), -1)


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def check(base: ModuleType | None) -> None:
    w = random_experts(CONFIG)
    for t in (1, 2, 3, 8):
        x, ids, wts = routing(t)
        ref = moe_reference(x, ids, wts, w)
        line = f"check T={t}: v6 rel err {rel(moe_mxfp4_slots(x, ids, wts, w, PLAN).sum(1), ref):.1e}"
        ahead = (16, 512, 4, True)
        h = v6.gemv_up(x, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit, SWIGLU_ALPHA, tiles=ahead)
        y = v6.gemv_down(h, ids, wts, w.w2_blocks, w.w2_scales, w.b2, tiles=ahead)
        line += f", with look-ahead loads {rel(y.sum(1), ref):.1e}"
        if base is not None:
            h = base.gemv_up(x, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit, SWIGLU_ALPHA)
            y = base.gemv_down(h, ids, wts, w.w2_blocks, w.w2_scales, w.b2)
            line += f", baseline {rel(y.sum(1), ref):.1e}"
        record(line)


def layer_bytes(w: ExpertWeights, ids: torch.Tensor) -> int:
    per_expert = w.w1_blocks[0].numel() + w.w1_scales[0].numel() + w.w2_blocks[0].numel() + w.w2_scales[0].numel()
    return len(torch.unique(ids)) * per_expert


def bench_gemv(base: ModuleType | None, layers: int) -> None:
    ws = [random_experts(CONFIG) for _ in range(layers)]
    for t in (1, 2, 4, 8):
        bench_tokens(t, ws, base)


def bench_tokens(t: int, ws: list[ExpertWeights], base: ModuleType | None) -> None:
    x, ids, wts = routing(t)
    packed = v6.pack_activations(x)  # the engine's RMSNorm kernel writes this form
    layers = len(ws)
    used = layers * layer_bytes(ws[0], ids)

    def up_all(tiles: Tiles | None = None) -> list[torch.Tensor]:
        return [v6.gemv_up(packed, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit, SWIGLU_ALPHA, tiles=tiles)
                for w in ws]

    hs = up_all()

    def down_all(tiles: Tiles | None = None) -> None:
        for w, h in zip(ws, hs, strict=True):
            v6.gemv_down(h, ids, wts, w.w2_blocks, w.w2_scales, w.b2, tiles=tiles)

    def pair_all(up: Tiles, down: Tiles) -> None:
        for w in ws:
            h = v6.gemv_up(packed, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit, SWIGLU_ALPHA, tiles=up)
            v6.gemv_down(h, ids, wts, w.w2_blocks, w.w2_scales, w.b2, tiles=down)

    line = f"MoE GEMV T={t}:"
    for prefetch in (False, True):
        best_up = sweep(t, "up", v6.UP_TILES, up_all, prefetch)
        best_down = sweep(t, "down", v6.DOWN_TILES, down_all, prefetch)
        ms = graph_ms(partial(pair_all, best_up[1], best_down[1])) / layers
        line += (f" v6{' look-ahead' if prefetch else ''} {ms * 1e3:6.1f} us a layer ({used / layers / ms / 1e6:5.0f} "
                 f"GB/s; up {best_up[0] / layers * 1e3:.1f} {best_up[1][:3]}, down {best_down[0] / layers * 1e3:.1f} "
                 f"{best_down[1][:3]})")
    if base is not None:
        def base_all() -> None:
            for w in ws:
                h = base.gemv_up(x, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit, SWIGLU_ALPHA)
                base.gemv_down(h, ids, wts, w.w2_blocks, w.w2_scales, w.b2)

        bms = graph_ms(base_all) / layers
        line += f" | baseline {bms * 1e3:6.1f} us ({used / layers / bms / 1e6:5.0f} GB/s)"
    record(line)


def sweep(t: int, name: str, table: dict[int, Tiles], fn, prefetch: bool) -> tuple[float, Tiles]:  # type: ignore[no-untyped-def]
    best = (1e9, table.get(t, v6.MORE_TOKENS_TILES))
    for shape in SHAPES:
        try:
            ms = graph_ms(partial(fn, (*shape, prefetch)))
        except Exception as e:  # noqa: BLE001 - a tile the compiler refuses is a result too
            print(f"T={t} {name} {shape}: {type(e).__name__}: {str(e)[:100]}", flush=True)
            continue
        print(f"T={t} {name} {shape} look-ahead {prefetch}: {ms * 1e3:.1f} us, all layers", flush=True)
        if ms < best[0]:
            best = (ms, (*shape, prefetch))
    return best


# Engine plans timed at batch 1 (the prefill kernels compile on the prompts: no start-up warm-up
# beyond one token). v5's MoE tiles, which earlier results compare, are gone from the engine.
DECODE = KernelPlan(warmup_tokens=(1,))
VARIANTS = (
    ("PDL off", replace(DECODE, pdl=False, run_ahead=False)),
    ("PDL on", replace(DECODE, run_ahead=False)),
    ("PDL on, and steps run ahead", DECODE),
)


def profile_decode() -> None:
    """Batch 1 in each VARIANTS plan, fresh graphs each, twice over (the spread is the noise);
    the kernel breakdown under torch.profiler in the first round."""
    model = random_model(CONFIG)
    walls: dict[str, list[float]] = defaultdict(list)
    for round_ in range(2):
        for label, plan in VARIANTS:
            d = Driver(model, CacheBudget(16, 3200, 64, 8192, bytes_per_block=0), plan)
            walls[label].append(profile_driver(d, label, breakdown=round_ == 0))
            del d
            gc.collect()
            torch.cuda.empty_cache()
    for label, ms in walls.items():
        record(f"batch 1 {label:<40} wall {min(ms):.3f} / {max(ms):.3f} ms a step ({1e3 / min(ms):.0f} tok/s best)")


def profile_driver(d: Driver, label: str, breakdown: bool) -> float:
    """-> wall ms a step (200 steps, no profiler); with `breakdown`, the kernels under torch.profiler."""
    seq = d.add(rand_tokens(256), 10_000)
    while seq.num_output_tokens < 4:
        d.step()
    torch.cuda.synchronize()
    steps = 200
    t0 = time.perf_counter()
    for _ in range(steps):
        d.step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / steps * 1e3
    graph = d.runner.graphs._graphs[1] if d.runner.graphs is not None else None
    if graph is not None:  # the same step's GPU work alone, replayed back to back: the rest is the host's
        t0 = time.perf_counter()
        for _ in range(steps):
            graph.replay()
        torch.cuda.synchronize()
        gpu = (time.perf_counter() - t0) / steps * 1e3
        record(f"batch 1 {label:<40} wall {wall:.3f} ms a step, its graph replayed alone {gpu:.3f} ms")
    if not breakdown:
        d.sched.finish_all([seq])
        return wall
    per_kernel, launches, _ = profile_steps(d, 50)
    record(f"profile batch 1, {label}: wall {wall:.3f} ms/step ({1e3 / wall:.0f} tok/s), kernels "
           f"{sum(per_kernel.values()):.3f} ms/step, {sum(launches.values())} launches/step")
    for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:12]:
        record(f"    {ms * 1e3:8.1f} us  x{launches[name]:<4} {name}")
    d.sched.finish_all([seq])
    return wall


def load_baseline(path: Path | None) -> ModuleType | None:
    if path is None or not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("moe_gemv_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="check,gemv,profile")
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    base = load_baseline(args.baseline)
    started = time.time()
    if "check" in parts:
        check(base)
    if "gemv" in parts:
        bench_gemv(base, args.layers)
    if "profile" in parts:
        profile_decode()
    print(f"# {torch.cuda.get_device_name()}, total {time.time() - started:.0f} s, baseline {args.baseline}, "
          f"v6 tiles up {v6.UP_TILES} down {v6.DOWN_TILES} beyond {v6.MORE_TOKENS_TILES}")
    print("\n".join(TABLE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
