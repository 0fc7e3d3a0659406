"""The fast engine's benchmark: kernels against their references, then the engine's figures.

    python bench/fast_engine.py [--parts kernels,engine,capacity,peer] [--checkpoint DIR] [--out DIR]
                                [--model 20b|120b]

With --checkpoint, a gpt-oss-20b-shaped checkpoint (random weights, MXFP4 experts, the
Hugging Face layout) is written there unless one is already there, and both codexpc and
transformers load it; without, codexpc runs on random weights made on the GPU (seconds, no disk)
and the peer is skipped. --model 120b runs gpt-oss-120b's shapes (random weights on the GPU: a
120b checkpoint does not fit this machine's disk beside the system, and transformers cannot hold
120b on one 80 GB GPU without the hub's MXFP4 kernels). Prints one table: figure, codexpc,
peer, ratio, share of floor, GPU. --out writes it as table.txt and its figures as
results.jsonl (bench/results_log.py: one JSON object a figure, with GPU, commit and date).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import results_log  # noqa: E402
from bench.fast_engine_kernels import bench_kernels  # noqa: E402
from bench.fast_engine_parts import Row, bench_capacity, bench_engine, bench_peer, load_codexpc  # noqa: E402
from codexpc.engine.model_config import GPT_OSS_20B, GPT_OSS_120B  # noqa: E402


def print_table(rows: list[Row], gpu: str) -> str:
    head = f"{'figure':<44} {'codexpc':>12} {'peer':>12} {'ratio':>8} {'of floor':>9}  GPU"
    lines = [head, "-" * len(head)]
    for r in rows:
        peer = f"{r.peer:12.1f}" if r.peer is not None else f"{'-':>12}"
        # ratio: how many times better codexpc is (peer/value where lower is better)
        speedup = (r.peer / r.value if r.lower_is_better else r.value / r.peer) if r.peer else None
        ratio = f"{speedup:8.2f}" if speedup is not None else f"{'-':>8}"
        floor = f"{r.value / r.floor:9.0%}" if r.floor else f"{'-':>9}"
        if r.floor and r.lower_is_better:
            floor = f"{r.floor / r.value:9.0%}"
        lines.append(f"{r.name:<44} {r.value:12.1f} {peer} {ratio} {floor}  {gpu}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="kernels,engine,capacity,peer")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", choices=("20b", "120b"), default="20b")
    args = parser.parse_args()
    config = GPT_OSS_120B if args.model == "120b" else GPT_OSS_20B
    parts = set(args.parts.split(","))
    gpu = f"{torch.cuda.get_device_name()}, gpt-oss-{args.model} shapes"
    rows: list[Row] = []
    started = time.time()
    if "kernels" in parts:
        rows += bench_kernels(config)
        print_table(rows, gpu)
    if parts & {"engine", "capacity"}:
        model = load_codexpc(args.checkpoint, config)
        print(f"codexpc loaded at {time.time() - started:.0f} s", flush=True)
        if "engine" in parts:
            rows += bench_engine(model)
            print_table(rows, gpu)
        if "capacity" in parts:
            rows += bench_capacity(model)
        del model
        gc.collect()  # the runner's CUDA graphs and caches sit in reference cycles
        torch.cuda.empty_cache()
    if "peer" in parts and args.checkpoint is not None:
        print(f"peer starts at {time.time() - started:.0f} s", flush=True)
        rows = bench_peer(args.checkpoint, rows)
    text = print_table(rows, gpu)
    print(f"total {time.time() - started:.0f} s", flush=True)
    if args.out is not None:
        rows_out = [{"figure": r.name, "value": r.value, "peer": r.peer, "floor": r.floor,
                     "lower_is_better": r.lower_is_better, "model": args.model} for r in rows]
        results_log.write(args.out, "fast_engine", text, rows_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
