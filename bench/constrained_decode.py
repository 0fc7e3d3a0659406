"""Decode tokens/s of the paged engine with grammar constraints on and off, side by side.

    python bench/constrained_decode.py                 # CUDA: gpt-oss-20b's shapes, random weights
    python bench/constrained_decode.py --size tiny     # the tiny model, on the CPU as well

Every sequence decodes after Codex's real turn-1 prompt (tests/fixtures/codex-0.169), at batch 1
(temperature 1), 8 and 64 (temperature 1), first unconstrained, then under the turn grammar of
Codex's real tool list (codexpc/constrain). Random weights wander through the grammar the way a
real model never would (a tool call, a final answer, ...): when a sequence's grammar completes,
it gets a fresh matcher and decodes on, so every step is a constrained step. The engine's loop
runs synchronously here (schedule, run, consume, update: PagedEngine.step without its thread).
Besides tokens/s it reports the host time spent filling masks and consuming tokens, per token
and per step, against the step time: mask work below the step's GPU time is hidden by it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codexpc.constrain import Constraint, constraint_for, load_tokenizer  # noqa: E402
from codexpc.constrain import matcher as matcher_module  # noqa: E402
from codexpc.engine import sampling  # noqa: E402
from codexpc.engine.api import SamplingParams  # noqa: E402
from codexpc.engine.model import Transformer  # noqa: E402
from codexpc.engine.model_config import GPT_OSS_20B, TINY, ModelConfig  # noqa: E402
from codexpc.engine.paged import model_runner  # noqa: E402
from codexpc.engine.paged.block_manager import BlockManager  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget, derive_budget, free_bytes  # noqa: E402
from codexpc.engine.paged.kernel_plan import default_plan  # noqa: E402
from codexpc.engine.paged.model_runner import ModelRunner  # noqa: E402
from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig  # noqa: E402
from codexpc.engine.paged.sequence import Sequence  # noqa: E402
from codexpc.engine.sampling import make_generator  # noqa: E402
from codexpc.harmony.encoding import load_encoding  # noqa: E402
from codexpc.harmony.render import RenderOptions, render_responses  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "codex-0.169" / "responses-request-turn1.json"
SIZES = {"tiny": TINY, "20b": GPT_OSS_20B}


class HostTimer:
    """Wall time the engine's thread spends in the constraint's host work (masks, consumes)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        fill, consume = sampling.constraint_bitmask, matcher_module.consume_all

        def timed_fill(matchers, vocab):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fill(matchers, vocab)
            finally:
                self.seconds += time.perf_counter() - t0

        def timed_consume(pairs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            consume(pairs)
            self.seconds += time.perf_counter() - t0
            self.tokens += len(pairs)

        model_runner.constraint_bitmask = timed_fill  # the runner's own reference to it
        self.consume = timed_consume


def random_model(c: ModelConfig, dev: torch.device) -> Transformer:
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = Transformer(c, dtype, device=torch.device("meta")).to_empty(device=dev)
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


def decode_rate(runner: ModelRunner, budget: CacheBudget, prompt: list[int], n: int, temperature: float,
                steps: int, constraint: Constraint | None, timer: HostTimer) -> dict[str, float]:
    blocks = BlockManager(budget.num_blocks, budget.block_size)
    sched = Scheduler(SchedulerConfig(budget.max_num_seqs, budget.max_num_batched_tokens, 1 << 30), blocks)
    seqs, generators = [], {}
    for i in range(n):
        params = SamplingParams(temperature=temperature, seed=i, max_new_tokens=1 << 30, constraint=constraint)
        seq = Sequence(f"s{i}", list(prompt), len(prompt), params)
        seq.matcher = constraint.start() if constraint is not None else None
        generators[seq.request_id] = make_generator(i)
        sched.add(seq)
        seqs.append(seq)

    def step() -> None:
        out = sched.schedule()
        sampled = runner.step(out, generators)
        by_id = {s.request_id: s for s in seqs}
        pairs = [(m, t) for rid, t in sampled.items() if (m := by_id[rid].matcher) is not None]
        if pairs:
            timer.consume(pairs)
        for s in seqs:
            if s.matcher is not None and (s.matcher.finished() or not s.matcher.active):
                s.matcher = constraint.start() if constraint is not None else None  # decode on, constrained
        sched.update(out, sampled)

    while any(s.num_output_tokens == 0 for s in seqs):  # prefill (the prefix cache shares the prompt)
        step()
    step()
    sync(runner.device)
    timer.seconds, timer.tokens = 0.0, 0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(runner.device)
    wall = time.perf_counter() - t0
    sched.finish_all(seqs)
    return {"tok_s": n * steps / wall, "step_ms": wall / steps * 1e3, "host_ms_per_step": timer.seconds / steps * 1e3,
            "host_us_per_token": timer.seconds / max(1, timer.tokens) * 1e6 if constraint else 0.0}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="20b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=0, help="timed decode steps (default: 200 on CUDA, 10 on the CPU)")
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    dev = torch.device(args.device)
    steps = args.steps or (200 if dev.type == "cuda" else 10)
    config = SIZES[args.size]
    encoding = load_encoding()
    rendered = render_responses(json.loads(FIXTURE.read_text()), encoding, RenderOptions(current_date="2026-01-01"))
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(config.vocab_size)
    constraint = constraint_for(rendered.registry, None, tokenizer)
    print(f"tokenizer + Codex grammar: {time.perf_counter() - t0:.2f} s; prompt {len(rendered.tokens)} tokens; "
          f"{len(rendered.registry)} tools", flush=True)
    model = random_model(config, dev)
    batches = [int(b) for b in args.batches.split(",")]
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        budget = derive_budget(config, free_bytes(dev), block_size=16)
    else:
        budget = CacheBudget(16, (len(rendered.tokens) // 16 + 64) * 2, max(batches), 4096, bytes_per_block=0)
    runner = ModelRunner.create(model, budget, default_plan(dev))
    timer = HostTimer()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    print(f"{args.size} on {name}, {steps} timed steps a run")
    print(f"{'sequences':>9} {'temp':>4} | {'off tok/s':>10} {'on tok/s':>10} {'cost':>7} | "
          f"{'step ms':>8} {'host mask+consume ms/step':>26} {'us/token':>9}")
    rows = []
    for n in batches:
        off = decode_rate(runner, budget, rendered.tokens, n, 1.0, steps, None, timer)
        on = decode_rate(runner, budget, rendered.tokens, n, 1.0, steps, constraint, timer)
        cost = off["tok_s"] / on["tok_s"] - 1
        print(f"{n:>9} {1.0:>4} | {off['tok_s']:>10.1f} {on['tok_s']:>10.1f} {cost:>+7.1%} | "
              f"{on['step_ms']:>8.2f} {on['host_ms_per_step']:>26.3f} {on['host_us_per_token']:>9.1f}", flush=True)
        rows.append({"sequences": n, "temperature": 1.0, "off": off, "on": on, "cost": cost})
    if args.out:
        args.out.write_text(json.dumps({"device": name, "size": args.size, "steps": steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
