"""transformers on the same checkpoint: the peer figures of bench/fast_engine.py."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure_transformers(checkpoint: Path) -> dict[str, float]:
    from transformers import AutoModelForCausalLM, DynamicCache

    out: dict[str, float] = {}
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.bfloat16, device_map="cuda",
                                                 attn_implementation="flex_attention")
    model.eval()
    print(f"transformers loaded in {time.time() - t0:.0f} s", flush=True)

    def ids(b: int, n: int) -> torch.Tensor:
        return torch.randint(0, 200000, (b, n), device="cuda")

    def generate(b: int, new: int) -> None:
        model.generate(ids(b, 256), max_new_tokens=new, min_new_tokens=new, do_sample=False)

    steps = {"decode batch 1 (": (1, 16), "decode 64 sequences": (64, 8)}
    with torch.inference_mode():
        for key, (b, new) in steps.items():
            try:
                generate(b, 2)  # warm-up
                long, short = _timed(partial(generate, b, new)), _timed(partial(generate, b, 2))
                out[key] = b * (new - 2) / (long - short)
            except Exception as exc:  # noqa: BLE001 - a peer failure is a figure, not a crash
                log.warning("transformers %s failed: %s", key, exc)
        try:
            model(ids(1, 1024))
            out["prefill 8k"] = 8192 / _timed(lambda: model(ids(1, 8192), logits_to_keep=1))
            cache = DynamicCache(config=model.config)
            model(ids(1, 16384), past_key_values=cache, use_cache=True, logits_to_keep=1)
            out["next turn TTFT"] = 1e3 * _timed(
                lambda: model(ids(1, 500), past_key_values=cache, use_cache=True, logits_to_keep=1))
        except Exception as exc:  # noqa: BLE001
            log.warning("transformers prefill failed: %s", exc)
    print("transformers:", out, flush=True)
    return out
