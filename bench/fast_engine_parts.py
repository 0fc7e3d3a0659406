"""The engine measurements behind bench/fast_engine.py: engine figures, capacity, the peer."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from triton.testing import do_bench

from codexpc.engine.api import SamplingParams
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import ModelConfig
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.cache_sizing import CacheBudget, derive_budget, free_bytes
from codexpc.engine.paged.kernel_plan import KernelPlan
from codexpc.engine.paged.model_runner import ModelRunner
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
from codexpc.engine.paged.sequence import Sequence
from codexpc.engine.sampling import make_generator

DEV = torch.device("cuda")


# The engine's kernels launched one by one (the graphs, and so the steps run ahead, off).
NO_GRAPHS = KernelPlan(cuda_graphs=False, run_ahead=False)


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


def load_codexpc(checkpoint: Path | None, config: ModelConfig) -> Transformer:
    if checkpoint is None:
        return random_model(config)
    from codexpc.checkpoint import open_checkpoint, write_checkpoint
    from codexpc.engine.weights import load_model

    if not (checkpoint / "config.json").exists():
        t0 = time.time()
        write_checkpoint(config, "hf", checkpoint, seed=0)
        print(f"wrote checkpoint in {time.time() - t0:.0f} s", flush=True)
    return load_model(open_checkpoint(checkpoint), DEV)


class Driver:
    """The engine's worker loop without the thread: schedule, run, update, synchronously. `plan`:
    the kernels (None: the engine's default)."""

    def __init__(self, model: Transformer, budget: CacheBudget, plan: KernelPlan | None = None) -> None:
        self.budget = budget
        self.blocks = BlockManager(budget.num_blocks, budget.block_size)
        cfg = SchedulerConfig(budget.max_num_seqs, budget.max_num_batched_tokens, model.config.context_length)
        self.sched = Scheduler(cfg, self.blocks)
        self.runner = ModelRunner.create(model, budget, plan)
        self._n = 0
        self._generators: dict[str, torch.Generator] = {}

    def add(self, tokens: list[int], max_new: int, temperature: float = 0.0) -> Sequence:
        """A request; temperature > 0 samples (top_p 1, seed = its number), as the daemon would."""
        self._n += 1
        params = SamplingParams(temperature=temperature, max_new_tokens=max_new, seed=self._n)
        seq = Sequence(f"s{self._n}", list(tokens), len(tokens), params)
        if temperature > 0:
            self._generators[seq.request_id] = make_generator(self._n)
        self.sched.add(seq)
        return seq

    def step(self) -> int:
        out = self.sched.schedule()
        sampled = self.runner.step(out, self._generators)
        self.sched.update(out, sampled)
        return len(sampled)

    def drain(self) -> None:
        while self.sched.has_work():
            self.step()


def profile_steps(d: Driver, steps: int) -> tuple[dict[str, float], dict[str, int], torch.profiler.profile]:
    """`steps` engine steps under torch.profiler -> (ms a step, launches a step) by CUDA kernel
    name (its first 70 characters), and the profile itself (for a trace)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            d.step()
        torch.cuda.synchronize()
    ms: dict[str, float] = defaultdict(float)
    launches: dict[str, int] = defaultdict(int)
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            ms[ev.name[:70]] += ev.device_time / steps / 1e3
            launches[ev.name[:70]] += 1
    return ms, {name: n // steps for name, n in launches.items()}, prof


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


def decode_rate(d: Driver, n: int, prompt: int, steps: int, temperature: float = 0.0) -> float:
    seqs = [d.add(rand_tokens(prompt), 10_000, temperature) for _ in range(n)]
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
    eager = Driver(model, budget, NO_GRAPHS)
    rows.append(Row("decode batch 1, no CUDA graph (tok/s)", decode_rate(eager, 1, 256, 20)))
    del eager
    t0 = time.perf_counter()
    d = Driver(model, budget)
    print(f"decode graphs captured in {time.perf_counter() - t0:.1f} s", flush=True)
    rows.append(Row("decode batch 1 (tok/s)", decode_rate(d, 1, 256, 100), None, bw / model_bytes(c, 4)))
    rows.append(Row("decode batch 1, temperature 1 as Codex sends (tok/s)", decode_rate(d, 1, 256, 100, 1.0), None,
                    bw / model_bytes(c, 4)))
    rows.append(Row("decode 64 sequences, aggregate (tok/s)", decode_rate(d, 64, 256, 30), None,
                    64 * bw / model_bytes(c, c.num_experts)))
    active = flops_per_token(c, 4096)  # the mean context of an 8k prompt
    for _ in range(2):  # the first compiles the prefill kernels
        seq = d.add(rand_tokens(8192), 1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        d.drain()
        prefill_s = time.perf_counter() - t0
    assert seq.is_finished
    rows.append(Row("prefill 8k tokens (tok/s)", 8192 / prefill_s, None, flops / active))
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
    d = Driver(model, budget, NO_GRAPHS)
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
