"""transformers on the same checkpoint: the peer figures of bench/fast_engine.py."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def measure_transformers(checkpoint: Path, device: str = "cuda", prefill: int = 8192, cached: int = 16384,
                         batch: int = 64) -> dict[str, float]:
    """Figures keyed by the start of the codexpc row they sit beside."""
    from transformers import AutoModelForCausalLM, DynamicCache, Mxfp4Config

    out: dict[str, float] = {}
    t0 = time.time()
    # bf16 experts: the hub's MXFP4 kernels cannot be fetched offline (and design.md's peer
    # figures were taken this way too).
    model = AutoModelForCausalLM.from_pretrained(
        str(checkpoint), dtype=torch.bfloat16, device_map=device if device != "cpu" else None,
        attn_implementation="eager", quantization_config=Mxfp4Config(dequantize=True))
    model.eval()
    print(f"transformers loaded in {time.time() - t0:.0f} s", flush=True)

    def ids(b: int, n: int) -> torch.Tensor:
        return torch.randint(0, 200000, (b, n), device=device)

    def generate(b: int, new: int) -> None:
        model.generate(ids(b, 256), max_new_tokens=new, min_new_tokens=new, do_sample=False)

    steps = {"decode batch 1 (": (1, 16), "decode 64 sequences": (batch, 8)}
    with torch.inference_mode():
        for key, (b, new) in steps.items():
            try:
                generate(b, 2)  # warm-up
                long, short = _timed(partial(generate, b, new)), _timed(partial(generate, b, 2))
                out[key] = b * (new - 2) / (long - short)
            except Exception as exc:  # noqa: BLE001 - a peer failure is a figure, not a crash
                log.warning("transformers %s failed: %s", key, exc)
        # Prompts: the faster of eager and flex attention (design.md: eager runs out of memory at 16k).
        for impl in ("eager", "flex_attention") if device != "cpu" else ("eager",):
            try:
                model.set_attn_implementation(impl)
                model(ids(1, prefill), logits_to_keep=1)  # flex attention compiles per shape
                rate = prefill / _timed(lambda: model(ids(1, prefill), logits_to_keep=1))
                out["prefill 8k"] = max(rate, out.get("prefill 8k", 0.0))
                cache = DynamicCache(config=model.config)
                model(ids(1, cached), past_key_values=cache, use_cache=True, logits_to_keep=1)
                turn = partial(model, ids(1, 500), past_key_values=cache, use_cache=True, logits_to_keep=1)
                ms = 1e3 * _timed(turn)
                out["next turn TTFT"] = min(ms, out.get("next turn TTFT", float("inf")))
            except Exception as exc:  # noqa: BLE001 - out of memory with eager at 16k, say
                log.warning("transformers prompt figures with %s failed: %s", impl, exc)
            print(f"transformers after {impl}: {out}", flush=True)
    print("transformers:", out, flush=True)
    return out
