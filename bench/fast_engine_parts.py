"""The measurements behind bench/fast_engine.py: kernels, engine figures, capacity, the peer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from triton.testing import do_bench

from codexpc.engine.api import SamplingParams
from codexpc.engine.config import GPT_OSS_20B, ModelConfig
from codexpc.engine.kernels import moe_mxfp4 as moe_mxfp4_module
from codexpc.engine.kernels.attention import PagedBatch, paged_attention, paged_attention_reference
from codexpc.engine.kernels.moe_mxfp4 import ExpertWeights, moe_mxfp4, moe_reference, pick_block_m
from codexpc.engine.kernels.moe_mxfp4_triton import TUNED, Tiles
from codexpc.engine.model import Transformer
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.cache_sizing import CacheBudget, derive_budget, free_bytes
from codexpc.engine.paged.model_runner import ModelRunner
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
from codexpc.engine.paged.sequence import Sequence

CONFIG = GPT_OSS_20B
DEV = torch.device("cuda")


@dataclass
class Row:
    name: str
    value: float
    peer: float | None = None  # transformers, or for kernels the plain PyTorch reference
    floor: float | None = None  # the best any implementation could do on this GPU
    lower_is_better: bool = False


def ceilings() -> tuple[float, float]:
    """Measured copy bandwidth (bytes/s, read + write) and bf16 matmul rate (FLOP/s)."""
    a = torch.empty(2**30, dtype=torch.uint8, device=DEV)
    b = torch.empty_like(a)
    bw = 2 * a.numel() / (do_bench(lambda: b.copy_(a), return_mode="median") * 1e-3)
    x = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    flops = 2 * 8192**3 / (do_bench(lambda: x @ x, return_mode="median") * 1e-3)
    return bw, flops


def random_experts(c: ModelConfig) -> ExpertWeights:
    e, h, i = c.num_experts, c.hidden_size, c.intermediate_size
    u8 = torch.uint8

    def blocks(r: int, k: int) -> torch.Tensor:
        return torch.randint(0, 256, (e, r, k // 32, 16), dtype=u8, device=DEV)

    def scales(r: int, k: int) -> torch.Tensor:
        return torch.randint(118, 122, (e, r, k // 32), dtype=u8, device=DEV)

    bias = lambda r: torch.randn(e, r, device=DEV, dtype=torch.bfloat16) * 0.02  # noqa: E731
    return ExpertWeights(blocks(2 * i, h), scales(2 * i, h), bias(2 * i), blocks(h, i), scales(h, i), bias(h), 7.0)


def bench_kernels() -> list[Row]:
    bw, flops = ceilings()
    rows = [Row("copy bandwidth (GB/s)", bw / 1e9), Row("bf16 matmul (TFLOP/s)", flops / 1e12)]
    print(rows, flush=True)
    c = CONFIG
    w = random_experts(c)
    expert_bytes = (w.w1_blocks[0].numel() + w.w1_scales[0].numel() + w.w2_blocks[0].numel() + w.w2_scales[0].numel())
    params_per_expert = 3 * c.hidden_size * c.intermediate_size
    for t in (1, 64, 8192):
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        err = ((moe_mxfp4(x, ids, wts, w).float() - moe_reference(x, ids, wts, w).float()).norm()
               / moe_reference(x, ids, wts, w).float().norm()).item()
        args = (x, ids, wts, w)
        ms = do_bench(partial(moe_mxfp4, *args), return_mode="median")
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
    rows += sweep_moe(bw, flops)
    for t in (1, 64, 8192):  # the tuned tiles, as the engine will run them
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        ms = graph_ms(partial(moe_mxfp4, x, ids, wts, w))
        used = len(torch.unique(ids))
        rows.append(Row(f"MoE layer T={t} tuned, graph: weight GB/s", used * expert_bytes / (ms * 1e-3) / 1e9,
                        floor=bw / 1e9))
        rows.append(Row(f"MoE layer T={t} tuned, graph: us", ms * 1e3, lower_is_better=True))
        print(rows[-2:], flush=True)
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


SWEEP_SMALL = [Tiles(64, 128, 4, 4), Tiles(64, 64, 4, 3), Tiles(32, 128, 4, 4), Tiles(32, 64, 2, 4),
               Tiles(128, 128, 8, 3), Tiles(128, 64, 4, 4), Tiles(32, 256, 4, 3)]
SWEEP_LARGE = [Tiles(128, 64, 8, 3), Tiles(128, 128, 8, 3), Tiles(256, 64, 8, 3), Tiles(64, 64, 4, 3),
               Tiles(128, 64, 4, 4)]


def sweep_moe(bw: float, flops: float) -> list[Row]:
    """Time tile shapes under CUDA graphs, keep the best for each row-block size (TUNED)."""
    c = CONFIG
    w = random_experts(c)
    rows = []
    for t, configs in ((64, SWEEP_SMALL), (8192, SWEEP_LARGE)):
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        bm = pick_block_m(4 * t, c.num_experts)
        results = []
        for dense in ((False, True) if t > 64 else (False,)):
            for tiles in configs:
                TUNED[bm] = tiles
                try:
                    ms = graph_ms(partial(moe_mxfp4, x, ids, wts, w, dense))
                except Exception as exc:  # noqa: BLE001 - a config that fails to compile is skipped
                    print(f"T={t} {tiles} dense={dense}: failed {type(exc).__name__}", flush=True)
                    continue
                print(f"T={t} {tiles} dense={dense}: {ms * 1e3:.0f} us", flush=True)
                results.append((ms, tiles, dense))
        ms, best, dense = min(results, key=lambda r: r[0])
        TUNED[bm] = best
        if t > 64:
            moe_mxfp4_module.DENSE_MIN_SLOTS_PER_EXPERT = 512 if dense else 10**9
        rows.append(Row(f"MoE T={t} best {best.bn}x{best.bk}/{best.warps}w dense={dense} (us, graph)", ms * 1e3,
                        lower_is_better=True))
    return rows


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


def random_model(c: ModelConfig) -> Transformer:
    model = Transformer(c, torch.bfloat16, device=torch.device("meta")).to_empty(device=DEV)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if p.dtype == torch.uint8:
                p.random_(118, 122) if name.endswith("scales") else p.random_(0, 256)
            elif "norm" in name:
                p.fill_(1.0)
            elif "sinks" in name or "bias" in name:
                p.normal_(0, 0.1)
            else:
                p.normal_(0, p.shape[-1] ** -0.5)
    return model


def load_codexpc(checkpoint: Path | None) -> Transformer:
    if checkpoint is None:
        return random_model(CONFIG)
    from codexpc.checkpoint import open_checkpoint, write_checkpoint
    from codexpc.engine.weights import load_model

    if not (checkpoint / "config.json").exists():
        t0 = time.time()
        write_checkpoint(CONFIG, "hf", checkpoint, seed=0)
        print(f"wrote checkpoint in {time.time() - t0:.0f} s", flush=True)
    return load_model(open_checkpoint(checkpoint), DEV)


class Driver:
    """The engine's worker loop without the thread: schedule, run, update, synchronously."""

    def __init__(self, model: Transformer, budget: CacheBudget, graphs: bool = True) -> None:
        self.budget = budget
        self.blocks = BlockManager(budget.num_blocks, budget.block_size)
        cfg = SchedulerConfig(budget.max_num_seqs, budget.max_num_batched_tokens, model.config.context_length)
        self.sched = Scheduler(cfg, self.blocks)
        self.runner = ModelRunner.create(model, budget, cuda_graphs=graphs)
        self._n = 0

    def add(self, tokens: list[int], max_new: int) -> Sequence:
        self._n += 1
        seq = Sequence(f"s{self._n}", list(tokens), len(tokens), SamplingParams(temperature=0, max_new_tokens=max_new))
        self.sched.add(seq)
        return seq

    def step(self) -> int:
        out = self.sched.schedule()
        sampled = self.runner.step(out, {})
        self.sched.update(out, sampled)
        return len(sampled)

    def drain(self) -> None:
        while self.sched.has_work():
            self.step()


def rand_tokens(n: int) -> list[int]:
    return torch.randint(0, 200000, (n,)).tolist()


def model_bytes(c: ModelConfig, active_experts: int) -> int:
    """Bytes a decode step must read: everything but the unused experts (and the embedding)."""
    attn = c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) * 2
    gate = c.hidden_size * c.num_experts * 2
    expert = 3 * c.hidden_size * c.intermediate_size * 17 // 32  # 4.25 bits per weight
    return c.num_hidden_layers * (attn + gate + active_experts * expert) + c.vocab_size * c.hidden_size * 2


def flops_per_token(c: ModelConfig, context: int) -> float:
    """Matmul FLOPs of one prompt token attending to `context` keys (the unembedding excluded)."""
    attn = c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    experts = c.experts_per_token * 3 * c.hidden_size * c.intermediate_size
    scores = 4 * c.num_attention_heads * c.head_dim  # QK and PV per key
    keys = (context + c.sliding_window) / 2  # half the layers full, half windowed
    return c.num_hidden_layers * (2 * (attn + experts) + scores * keys)


def decode_rate(d: Driver, n: int, prompt: int, steps: int) -> float:
    seqs = [d.add(rand_tokens(prompt), 10_000) for _ in range(n)]
    while any(s.num_output_tokens == 0 for s in seqs):
        d.step()
    d.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        d.step()
    torch.cuda.synchronize()
    rate = n * steps / (time.perf_counter() - t0)
    d.sched.finish_all(seqs)
    return rate


def bench_engine(model: Transformer) -> list[Row]:
    bw, flops = ceilings()
    c = model.config
    torch.cuda.empty_cache()  # free_bytes sees only memory the caching allocator gave back
    budget = derive_budget(c, free_bytes(DEV), block_size=16)
    print(budget, flush=True)
    rows = []
    eager = Driver(model, budget, graphs=False)
    rows.append(Row("decode batch 1, no CUDA graph (tok/s)", decode_rate(eager, 1, 256, 20)))
    del eager
    t0 = time.perf_counter()
    d = Driver(model, budget)
    print(f"decode graphs captured in {time.perf_counter() - t0:.1f} s", flush=True)
    rows.append(Row("decode batch 1 (tok/s)", decode_rate(d, 1, 256, 100), 26.7, bw / model_bytes(c, 4)))
    rows.append(Row("decode 64 sequences, aggregate (tok/s)", decode_rate(d, 64, 256, 30), 240.0,
                    64 * bw / model_bytes(c, c.num_experts)))
    active = flops_per_token(c, 4096)  # the mean context of an 8k prompt
    for _ in range(2):  # the first compiles the prefill kernels
        seq = d.add(rand_tokens(8192), 1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        d.drain()
        prefill_s = time.perf_counter() - t0
    assert seq.is_finished
    rows.append(Row("prefill 8k tokens (tok/s)", 8192 / prefill_s, 3900.0, flops / active))
    ttfts = []
    for _ in range(2):  # two conversations: the first would show any compile left in the path
        conv = rand_tokens(16384)
        d.add(conv, 1)
        d.drain()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        turn = d.add(conv + rand_tokens(500), 1)
        d.drain()
        ttfts.append((time.perf_counter() - t0) * 1e3)
    rows.append(Row(f"next turn TTFT, 16k cached + 500 new (ms; {turn.num_cached_tokens} cached; 1st {ttfts[0]:.0f})",
                    ttfts[1], floor=max(model_bytes(c, c.num_experts) / bw, 500 * flops_per_token(c, 16384) / flops) * 1e3,
                    lower_is_better=True))
    rows.append(Row("prefix cache hits (blocks)", float(d.blocks.prefix_hits)))
    return rows


def bench_capacity(model: Transformer) -> list[Row]:
    torch.cuda.empty_cache()
    budget = derive_budget(model.config, free_bytes(DEV), block_size=16)
    d = Driver(model, budget, graphs=False)
    seqs = [d.add(rand_tokens(8192), 2) for _ in range(64)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    d.drain()
    secs = time.perf_counter() - t0
    done = sum(s.finish_reason == "length" for s in seqs)
    return [Row(f"64 x 8k served: finished (KV room {budget.num_tokens} tokens)", float(done)),
            Row("64 x 8k: prompt tokens/s", 64 * 8192 / secs),
            Row("64 x 8k: preemptions", float(d.sched.num_preemptions))]


def bench_peer(checkpoint: Path, rows: list[Row]) -> list[Row]:
    from bench.fast_engine_peer import measure_transformers

    peer = measure_transformers(checkpoint)
    for r in rows:
        for key, value in peer.items():
            if r.name.startswith(key):
                r.peer = value
    return rows
