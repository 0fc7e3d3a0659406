"""Kernel figures of bench/fast_engine.py: each Triton kernel against its reference, a tile sweep."""

from __future__ import annotations

from functools import partial

import torch
from triton.testing import do_bench

from bench.fast_engine_parts import DEV, Row, ceilings
from codexpc.engine.kernels.attention import PagedBatch, paged_attention, paged_attention_reference
from codexpc.engine.kernels.moe_mxfp4 import ExpertWeights, dense_rows, moe_mxfp4, moe_reference
from codexpc.engine.kernels.moe_mxfp4_triton import Tiles
from codexpc.engine.model_config import ModelConfig
from codexpc.engine.paged.kernel_plan import KernelPlan

PLAN = KernelPlan()  # the engine's kernels


def random_experts(c: ModelConfig) -> ExpertWeights:
    e, h, i = c.num_experts, c.hidden_size, c.intermediate_size
    u8 = torch.uint8

    def blocks(r: int, k: int) -> torch.Tensor:
        return torch.randint(0, 256, (e, r, k // 32, 16), dtype=u8, device=DEV)

    def scales(r: int, k: int) -> torch.Tensor:
        return torch.randint(118, 122, (e, r, k // 32), dtype=u8, device=DEV)

    bias = lambda r: torch.randn(e, r, device=DEV, dtype=torch.bfloat16) * 0.02  # noqa: E731
    return ExpertWeights(blocks(2 * i, h), scales(2 * i, h), bias(2 * i), blocks(h, i), scales(h, i), bias(h), 7.0)


def bench_kernels(c: ModelConfig) -> list[Row]:
    bw, flops = ceilings()
    rows = [Row("copy bandwidth (GB/s)", bw / 1e9), Row("bf16 matmul (TFLOP/s)", flops / 1e12)]
    print(rows, flush=True)
    w = random_experts(c)
    expert_bytes = (w.w1_blocks[0].numel() + w.w1_scales[0].numel() + w.w2_blocks[0].numel() + w.w2_scales[0].numel())
    params_per_expert = 3 * c.hidden_size * c.intermediate_size
    for t in (1, 64, 8192):
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        err = ((moe_mxfp4(x, ids, wts, w, PLAN).float() - moe_reference(x, ids, wts, w).float()).norm()
               / moe_reference(x, ids, wts, w).float().norm()).item()
        args = (x, ids, wts, w)
        ms = do_bench(partial(moe_mxfp4, *args, PLAN), return_mode="median")
        ref_ms = do_bench(partial(moe_reference, *args), return_mode="median", rep=50)
        if t <= 64:
            used = len(torch.unique(ids))
            gbs = used * expert_bytes / (ms * 1e-3) / 1e9
            ref = used * expert_bytes / (ref_ms * 1e-3) / 1e9
            rows.append(Row(f"MoE layer T={t}: weight GB/s (err {err:.1e})", gbs, ref, bw / 1e9))
        else:
            tf = 2 * t * 4 * params_per_expert / (ms * 1e-3) / 1e12
            ref = 2 * t * 4 * params_per_expert / (ref_ms * 1e-3) / 1e12
            rows.append(Row(f"MoE layer T={t}: TFLOP/s (err {err:.1e})", tf, ref, flops / 1e12))
        rows.append(Row(f"MoE layer T={t}: us", ms * 1e3, ref_ms * 1e3, lower_is_better=True))
        print(rows[-2:], flush=True)
    rows += sweep_moe(c)
    for t in (1, 64, 8192):  # the engine's tiles, under a graph as the engine runs them
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        ms = graph_ms(partial(moe_mxfp4, x, ids, wts, w, PLAN))
        used = len(torch.unique(ids))
        if t <= 64:  # bandwidth is the measure only where the weights' bytes bound the layer
            rows.append(Row(f"MoE layer T={t} engine tiles, graph: weight GB/s", used * expert_bytes / (ms * 1e-3) / 1e9,
                            floor=bw / 1e9))
        rows.append(Row(f"MoE layer T={t} engine tiles, graph: us", ms * 1e3, lower_is_better=True))
        print(rows[-1], flush=True)
    rows += bench_attention_kernel(bw, flops)
    return rows


def random_paged_batch(specs: list[tuple[int, int]], kv: int, qm: int, d: int, page: int):  # type: ignore[no-untyped-def]
    """specs: (cached, new) per sequence; blocks laid out in order (the kernel reads any order)."""
    tables, starts, lens, slots, nxt = [], [0], [], [], 0
    width = max(-(-(c + n) // page) for c, n in specs)
    for cached, new in specs:
        nb = -(-(cached + new) // page)
        table = list(range(nxt, nxt + nb))
        nxt += nb
        tables.append(table + [0] * (width - nb))
        starts.append(starts[-1] + new)
        lens.append(cached + new)
        slots += [table[p // page] * page + p % page for p in range(cached, cached + new)]
    kc = torch.randn(nxt, page, kv, d, device=DEV, dtype=torch.bfloat16)
    vc = torch.randn_like(kc)
    i32 = dict(dtype=torch.int32, device=DEV)
    batch = PagedBatch(torch.tensor(starts, **i32), torch.tensor(lens, **i32), torch.tensor(tables, **i32),
                       torch.tensor(slots, device=DEV), max(n for _, n in specs), tuple(starts), tuple(lens))
    q = torch.randn(starts[-1], kv * qm, d, device=DEV, dtype=torch.bfloat16)
    return q, kc, vc, batch


def graph_ms(fn) -> float:  # type: ignore[no-untyped-def]
    """GPU time of `fn` replayed as a CUDA graph (no Python launch gaps), median ms."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return do_bench(graph.replay, return_mode="median")


SWEEP_LARGE = [Tiles(128, 64, 8, 3), Tiles(128, 128, 8, 3), Tiles(256, 64, 8, 3), Tiles(64, 64, 4, 3),
               Tiles(128, 64, 4, 4)]


def sweep_moe(c: ModelConfig) -> list[Row]:
    """The bf16-copy row blocks (the engine's MoE from ~4k tokens) at 8192 tokens over tile shapes,
    under CUDA graphs: the best is reported (moe_mxfp4_triton.default_tiles holds the engine's)."""
    w = random_experts(c)
    t = 8192
    x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
    ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
    wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
    results = []
    for tiles in SWEEP_LARGE:
        try:
            ms = graph_ms(partial(dense_rows, x, ids, wts, w, tiles))
        except Exception as exc:  # noqa: BLE001 - a config that fails to compile is skipped
            print(f"T={t} {tiles}: failed {type(exc).__name__}", flush=True)
            continue
        print(f"T={t} {tiles}: {ms * 1e3:.0f} us", flush=True)
        results.append((ms, tiles))
    ms, best = min(results, key=lambda r: r[0])
    return [Row(f"MoE T={t} best {best.bn}x{best.bk}/{best.warps}w dense=True (us, graph)", ms * 1e3,
                lower_is_better=True)]


def bench_attention_kernel(bw: float, flops: float) -> list[Row]:
    rows = []
    kv, qm, d, page = 8, 8, 64, 16
    cases = {"decode 64 x 8k": [(8191, 1)] * 64, "decode 1 x 16k": [(16383, 1)],
             "prefill 8k": [(0, 8192)], "500 new on 16k": [(16384, 500)]}
    for name, specs in cases.items():
        q, kc, vc, batch = random_paged_batch(specs, kv, qm, d, page)
        sinks = torch.randn(kv * qm, device=DEV)
        args = (q, kc, vc, sinks, batch, 0)
        ms = do_bench(partial(paged_attention, *args), return_mode="median")
        ref_ms = do_bench(partial(paged_attention_reference, *args), return_mode="median", rep=50)
        ctx = sum(c + n for c, n in specs)
        if name.startswith("decode"):
            kv_bytes = ctx * kv * d * 2 * 2
            rows.append(Row(f"attention {name}: KV GB/s", kv_bytes / (ms * 1e-3) / 1e9,
                            kv_bytes / (ref_ms * 1e-3) / 1e9, bw / 1e9))
        else:
            f = sum(4 * n * (c + n / 2) * d * kv * qm for c, n in specs)  # causal: half the square
            rows.append(Row(f"attention {name}: TFLOP/s", f / (ms * 1e-3) / 1e12, f / (ref_ms * 1e-3) / 1e12,
                            flops / 1e12))
        print(rows[-1], f"{ms * 1e3:.0f} us vs {ref_ms * 1e3:.0f} us", flush=True)
    return rows
