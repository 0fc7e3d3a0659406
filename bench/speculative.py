"""Speculative decoding from the conversation: what a verify step costs, and what it buys.

    python bench/speculative.py [--size tiny|20b] [--checkpoint DIR] [--context 16384]
                                [--batches 1,8] [--copy 0,30,60,90] [--tokens 256] [--out FILE]

1. Step time against tokens verified (1..8) at each batch size, every sequence at --context
   tokens: a verify step of d tokens a sequence (its last token and d - 1 drafted ones) is run
   by ModelRunner.verify (eager: no CUDA graph), beside the plain decode step (graph on a GPU).
2. End to end, tokens/s with speculation off and on, on workloads whose token choice is
   scripted (as bench/daemon_e2e.py scripts it: the forward real, the chosen token fed back):
   each sequence's completion copies --copy percent of its tokens from its prompt (spans of 24
   tokens), the rest new tokens the prompt never had. The verify step's real acceptance runs,
   then its outcome is replaced by the script's (accept the draft's prefix the script agrees
   with, then the script's next token).

The engine loop is PagedEngine.step without its thread (schedule, run or verify, update).
Weights: --checkpoint; else --size tiny (the tiny random checkpoint, any device) or 20b (random
weights of gpt-oss-20b's shapes, CUDA only). On the CPU: --size tiny --context 1024.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codexpc.engine.api import SamplingParams  # noqa: E402
from codexpc.engine.model import Transformer  # noqa: E402
from codexpc.engine.paged import model_runner  # noqa: E402
from codexpc.engine.paged.block_manager import BlockManager  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget, derive_budget, free_bytes  # noqa: E402
from codexpc.engine.paged.model_runner import ModelRunner  # noqa: E402
from codexpc.engine.paged.scheduler import ScheduledSeq, Scheduler, SchedulerConfig, SchedulerOutput  # noqa: E402
from codexpc.engine.paged.sequence import Sequence  # noqa: E402
from codexpc.engine.speculative.config import SpeculativeConfig  # noqa: E402
from codexpc.engine.speculative.policy import Speculator  # noqa: E402

SPAN = 24  # tokens a copied stretch of the script takes from the prompt
NOVEL = (150_000, 200_000)  # ids of the script's new tokens; prompts use ids below
NOTE = "token choice scripted; model forward real"


def load(size: str, checkpoint: Path | None, device: torch.device) -> Transformer:
    from codexpc.checkpoint import open_checkpoint, write_checkpoint
    from codexpc.engine.weights import load_model

    if checkpoint is None and size == "20b":
        from bench.fast_engine_parts import CONFIG, random_model  # CUDA and Triton only

        torch.manual_seed(0)
        return random_model(CONFIG)
    if checkpoint is None:
        from codexpc.engine.model_config import TINY

        checkpoint = write_checkpoint(TINY, "original", Path(tempfile.mkdtemp()) / "tiny", seed=0)
    return load_model(open_checkpoint(checkpoint), device)


class Driver:
    """PagedEngine.step without the thread."""

    def __init__(self, model: Transformer, budget: CacheBudget, spec: SpeculativeConfig | None,
                 runner: ModelRunner) -> None:
        self.blocks = BlockManager(budget.num_blocks, budget.block_size)
        cfg = SchedulerConfig(budget.max_num_seqs, budget.max_num_batched_tokens, model.config.context_length)
        self.speculator = Speculator(spec) if spec is not None else None
        self.sched = Scheduler(cfg, self.blocks, self.speculator)
        self.runner = runner
        self._n = 0

    def add(self, tokens: list[int], max_new: int) -> Sequence:
        self._n += 1
        seq = Sequence(f"s{self._n}", list(tokens), len(tokens), SamplingParams(temperature=0.0, max_new_tokens=max_new))
        self.sched.add(seq)
        return seq

    def step(self) -> None:
        out = self.sched.schedule()
        if out.num_drafted:
            sampled, verified = self.runner.verify(out, {})
        else:
            sampled, verified = self.runner.step(out, {}), {}
        self.sched.update(out, sampled, verified)

    def finish(self) -> None:
        self.sched.finish_all(list(self.sched.running) + list(self.sched.waiting))
        self.blocks.reset_prefix_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeat: int) -> float:
    """Median ms of fn()."""
    fn()
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def step_times(driver: Driver, batch: int, context: int, device: torch.device, repeat: int) -> list[dict[str, Any]]:
    rng = random.Random(batch)
    seqs = [driver.add([rng.randrange(1000, 100_000) for _ in range(context)], 10_000) for _ in range(batch)]
    while any(s.num_output_tokens == 0 for s in seqs):  # prefill
        driver.step()
    rows: list[dict[str, Any]] = []
    model_runner.RUN_AHEAD = False
    for s in seqs:
        assert driver.blocks.allocate_slots(s, 1)
    plain = SchedulerOutput([ScheduledSeq(s, 1) for s in seqs])
    rows.append({"batch": batch, "context": context, "tokens_verified": 1, "kind": "decode step",
                 "ms": timed(lambda: driver.runner.step(plain, {}), device, repeat)})
    print(json.dumps(rows[-1]), flush=True)
    model_runner.RUN_AHEAD = True
    for d in range(1, 9):
        drafts = [[rng.randrange(1000, 100_000) for _ in range(d - 1)] for _ in seqs]
        for s in seqs:
            assert driver.blocks.allocate_slots(s, d)
        out = SchedulerOutput([ScheduledSeq(s, d, draft) for s, draft in zip(seqs, drafts, strict=True)])
        ms = timed(lambda out=out: driver.runner.verify(out, {}), device, repeat)  # type: ignore[misc]
        for s in seqs:  # nothing was accepted: give back what the draft took
            driver.blocks.truncate(s, s.num_tokens)
        rows.append({"batch": batch, "context": context, "tokens_verified": d, "kind": "verify (eager)", "ms": ms})
        print(json.dumps(rows[-1]), flush=True)
    driver.finish()
    return rows


def make_script(prompt: list[int], copy_pct: int, n: int, rng: random.Random) -> list[int]:
    """n tokens of which copy_pct percent are spans copied from `prompt`, the rest new."""
    novel_span = SPAN * (100 - copy_pct) // copy_pct if copy_pct else n
    script: list[int] = []
    while len(script) < n:
        script += [rng.randrange(*NOVEL) for _ in range(novel_span)]
        if copy_pct:
            start = rng.randrange(len(prompt) - SPAN)
            script += prompt[start : start + SPAN]
    return script[:n]


def script_choices(scripts: dict[str, list[int]]) -> None:
    """Every sampled or verified token becomes the script's, after the real sampling ran."""
    real_sample = ModelRunner._sample_on_device
    real_verify = model_runner.split_verify_logits

    def next_of(seq: Any, i: int = 0) -> int:
        script = scripts[seq.request_id]
        return script[min(seq.num_output_tokens + i, len(script) - 1)]

    def sample(host: Any, logits: torch.Tensor, generators: Any) -> torch.Tensor:
        real_sample(host, logits, generators)
        return torch.tensor([next_of(seq) for seq in host.samplers], device=logits.device)

    def verify(logits: torch.Tensor, samplers: Any, drafts: Any, generators: Any) -> Any:
        real_verify(logits, samplers, drafts, generators)
        sampled, verified = {}, {}
        for seq, draft in zip(samplers, drafts, strict=True):
            if not draft:
                sampled[seq.request_id] = next_of(seq)
                continue
            n = 0
            while n < len(draft) and draft[n] == next_of(seq, n):
                n += 1
            verified[seq.request_id] = draft[:n] + [next_of(seq, n)]
        return sampled, verified

    ModelRunner._sample_on_device = staticmethod(sample)  # type: ignore[method-assign]
    model_runner.split_verify_logits = verify  # type: ignore[assignment]


def end_to_end(driver: Driver, batch: int, copy_pct: int, tokens: int, prompt_len: int,
               scripts: dict[str, list[int]], device: torch.device) -> dict[str, Any]:
    rng = random.Random(copy_pct * 1000 + batch)
    seqs = []
    for _ in range(batch):
        prompt = [rng.randrange(1000, 100_000) for _ in range(prompt_len)]
        seq = driver.add(prompt, tokens)
        scripts[seq.request_id] = make_script(prompt, copy_pct, tokens, rng)
        seqs.append(seq)
    while any(s.num_output_tokens == 0 for s in seqs):
        driver.step()
    sync(device)
    t0, first = time.perf_counter(), sum(s.num_output_tokens for s in seqs)
    while driver.sched.has_work():
        driver.step()
    sync(device)
    elapsed = time.perf_counter() - t0
    assert all(s.token_ids[s.num_prompt_tokens :] == scripts[s.request_id] for s in seqs)
    spec = driver.speculator
    row = {"batch": batch, "copy_pct": copy_pct, "speculative": spec is not None,
           "tokens_per_s": (batch * tokens - first) / elapsed,
           "drafted": spec.drafted if spec else 0, "accepted": spec.accepted if spec else 0}
    driver.finish()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "20b"), default="20b")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--context", type=int, default=16384)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--copy", default="0,30,60,90")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=2048, help="prompt tokens of the end-to-end runs")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--min-match", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    model = load(args.size, args.checkpoint, device)
    batches = [int(b) for b in args.batches.split(",")]
    if device.type == "cuda":
        budget = derive_budget(model.config, free_bytes(device), 16, model.embedding.weight.element_size())
    else:
        blocks = max(batches) * (max(args.context, args.prompt + args.tokens) // 16 + 4)
        budget = CacheBudget(16, blocks, max(batches), 2048, bytes_per_block=0)
    runner = ModelRunner.create(model, budget)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                               "size": args.size, "note": NOTE, "steps": [], "end_to_end": []}
    for b in batches:
        results["steps"] += step_times(Driver(model, budget, None, runner), b, args.context, device, args.repeat)
    scripts: dict[str, list[int]] = {}
    script_choices(scripts)
    spec = SpeculativeConfig(enabled=True, k=args.k, min_match=args.min_match, max_batch=max(batches))
    for b in batches:
        for pct in (int(c) for c in args.copy.split(",")):
            for cfg in (None, spec):
                row = end_to_end(Driver(model, budget, cfg, runner), b, pct, args.tokens, args.prompt, scripts, device)
                results["end_to_end"].append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
