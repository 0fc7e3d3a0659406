"""MLX's CPU build beside the paged engine on the CPU: same checkpoint, same prompts, same run.

    python bench/mlx_cpu.py                    # the tiny random checkpoint (written once, cached)
    python bench/mlx_cpu.py --size small       # wider layers, so the vocabulary matters less
    python bench/mlx_cpu.py --checkpoint DIR   # any checkpoint both engines read

For each engine, through the engine contract (submit, iterate): the first turn's prefill
(prompt tokens / time to the first token), greedy decode tokens/s after it, and the second
turn's time to first token (the first turn re-sent plus a few tokens: both engines reuse the
cached prefix). This is not a speed figure for a Mac: MLX's CPU wheel multiplies with the
reference BLAS, and Metal is not here. docs/mlx.md has MLX's published Apple Silicon figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from codexpc.checkpoint import write_checkpoint  # noqa: E402
from codexpc.engine.api import Engine, SamplingParams  # noqa: E402
from codexpc.engine.factory import create_engine  # noqa: E402
from codexpc.engine.model_config import TINY, ModelConfig  # noqa: E402

SMALL = ModelConfig(num_hidden_layers=4, num_experts=8, experts_per_token=4, hidden_size=512,
                    intermediate_size=512, head_dim=64, num_attention_heads=8, num_key_value_heads=2,
                    sliding_window=128, initial_context_length=4096)
SIZES = {"tiny": TINY, "small": SMALL}


async def first_token_and_rest(engine: Engine, prompt: list[int], new: int, rid: str) -> tuple[list[int], float, float]:
    """(tokens, seconds to the first token, seconds for the rest)."""
    started = time.perf_counter()
    first_at = None
    tokens: list[int] = []
    generation = engine.submit(prompt, SamplingParams(temperature=0.0, max_new_tokens=new), rid)
    done = False
    while not done:
        for event in await generation.ready():  # the contract's way to read a generation
            if event.token_id is not None:
                tokens.append(event.token_id)
                first_at = first_at or time.perf_counter()
            done = done or event.finish_reason is not None
    assert first_at is not None
    return tokens, first_at - started, time.perf_counter() - first_at


async def measure(kind: str, checkpoint: Path, prompt_len: int, new: int) -> dict[str, Any]:
    started = time.perf_counter()
    engine = create_engine(kind, model="bench", checkpoint=checkpoint, device="cpu")
    load_s = time.perf_counter() - started
    try:
        prompt = [(i * 7919) % 199_000 for i in range(prompt_len)]
        await first_token_and_rest(engine, prompt[:16], 4, "warmup")
        tokens, ttft, rest = await first_token_and_rest(engine, prompt, new, "turn1")
        turn2 = prompt + tokens + [200005, 17, 18, 19]
        _, ttft2, _ = await first_token_and_rest(engine, turn2, 2, "turn2")
    finally:
        await engine.close()
    return {"engine": kind, "load_s": round(load_s, 2), "prompt_tokens": prompt_len,
            "prefill_tok_s": round(prompt_len / ttft, 1), "decode_tok_s": round((len(tokens) - 1) / rest, 1),
            "turn2_ttft_s": round(ttft2, 3), "tokens": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--checkpoint", type=Path, help="instead of a random checkpoint of --size")
    p.add_argument("--prompt", type=int, default=512, help="first-turn prompt tokens")
    p.add_argument("--new", type=int, default=64, help="greedy tokens decoded")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = Path(tempfile.gettempdir()) / f"codexpc-bench-mlx-{args.size}"
        if not (checkpoint / "config.json").exists():
            write_checkpoint(SIZES[args.size], "hf", checkpoint, seed=0)
    rows = [asyncio.run(measure(kind, checkpoint, args.prompt, args.new)) for kind in ("paged", "mlx")]
    same = rows[0].pop("tokens") == rows[1].pop("tokens")
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": threads,
                          "checkpoint": str(checkpoint), "same_tokens": same, "rows": rows}, indent=2))
        return
    print(f"{checkpoint} on {platform.machine()}, OMP_NUM_THREADS={threads}; greedy tokens equal: {same}")
    print(f"{'engine':8} {'load s':>7} {'prefill tok/s':>14} {'decode tok/s':>13} {'turn-2 TTFT s':>14}")
    for r in rows:
        print(f"{r['engine']:8} {r['load_s']:7} {r['prefill_tok_s']:14} {r['decode_tok_s']:13} {r['turn2_ttft_s']:14}")


if __name__ == "__main__":
    main()
