"""Baseline: codexpc's plain PyTorch engine beside transformers, on the same random gpt-oss weights.

    python bench/baseline.py                 # on a GPU: gpt-oss-20b's exact shapes
    python bench/baseline.py --size tiny     # a quick check on a CPU

Writes (or reuses) a random checkpoint in the Hugging Face layout, which both stacks load, then
reports load time, prefill tokens/s at each prompt length and decode tokens/s at batch 1, first
for codexpc (the plain model, MXFP4 experts, and the paged engine serving it), then for transformers (experts dequantized to
bf16, eager and flex attention). Only one model is on the GPU at a time. A measurement that
fails (out of memory, say) or would overrun the time budget is reported as such; the rest go on.
The table goes to stdout and, with the raw numbers, to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import logging
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from codexpc.checkpoint import detect_layout, open_checkpoint, write_checkpoint  # noqa: E402
from codexpc.checkpoint.hf import write_hf  # noqa: E402
from codexpc.checkpoint.random_weights import random_tensors  # noqa: E402
from codexpc.engine.api import EngineInfo, SamplingParams  # noqa: E402
from codexpc.engine.model import Transformer  # noqa: E402
from codexpc.engine.model_config import GPT_OSS_20B, TINY  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget  # noqa: E402
from codexpc.engine.paged.paged_engine import PagedEngine  # noqa: E402
from codexpc.engine.weights import load_model  # noqa: E402
from codexpc.errors import CheckpointError, VocabularyError  # noqa: E402

log = logging.getLogger("bench.baseline")

SIZES = {"tiny": TINY, "20b": GPT_OSS_20B}
DEFAULT_PREFILL = {"tiny": "256,1024", "20b": "2048,8192"}
DECODE_PROMPT = 128  # tokens before the timed decode steps
Results = dict[str, dict[str, object]]  # implementation -> metric -> number or "why not"


class Budget:
    """Skips what would not finish before the deadline, so the whole run stays bounded."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def allows(self, estimate_s: float) -> bool:
        return time.monotonic() + estimate_s < self.deadline


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def measure(results: dict[str, object], key: str, budget: Budget, estimate_s: float, fn: Callable[[], object]) -> None:
    """results[key] = fn(), or the reason there is no number."""
    if not budget.allows(estimate_s):
        results[key] = "skipped (time budget)"
        return
    try:
        results[key] = fn()
    except torch.cuda.OutOfMemoryError:
        results[key] = "out of memory"
        gc.collect()
        torch.cuda.empty_cache()
    except Exception as exc:  # noqa: BLE001 - one broken measurement must not lose the others
        log.exception("%s failed", key)
        results[key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"


def prompt_tokens(n: int, vocab: int, device: torch.device) -> torch.Tensor:
    # Ordinary (non-special) token ids; the values do not matter to the speed.
    return torch.randint(0, min(vocab, 199_998), (n,), generator=torch.Generator().manual_seed(n)).to(device)


def ensure_checkpoint(size: str, folder: Path) -> Path:
    try:
        if detect_layout(folder) == "hf" and open_checkpoint(folder).config == SIZES[size]:
            log.info("reusing the checkpoint in %s", folder)
            return folder
    except CheckpointError as exc:  # absent, or a write that was cut short: write it again
        log.info("no usable checkpoint in %s: %s", folder, exc)
    log.info("writing a random %s checkpoint (Hugging Face layout) to %s", size, folder)
    try:
        write_checkpoint(SIZES[size], "hf", folder, seed=0)
    except VocabularyError as exc:
        # tokenizer.json needs the o200k vocabulary, which neither stack needs to run the weights:
        # a host without it (no quicktok, no cached copy) gets the weights and config alone.
        log.warning("writing the weights without tokenizer files: %s", str(exc).splitlines()[0])
        write_hf(SIZES[size], random_tensors(SIZES[size], seed=0), folder)
    return folder


# ----- codexpc -----


def bench_codexpc(ckpt_dir: Path, device: torch.device, prefill: list[int], steps: int, budget: Budget) -> Results:
    started = time.perf_counter()
    model = load_model(open_checkpoint(ckpt_dir), device)
    sync(device)
    row: dict[str, object] = {"load_s": time.perf_counter() - started}
    measure_codexpc(row, model, device, prefill, steps, budget)
    row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model
    free(device)
    return {"codexpc torch": row}


def codexpc_prefill(model: Transformer, n: int, device: torch.device) -> float:
    tokens = prompt_tokens(n, model.config.vocab_size, device)
    model(tokens)  # warm-up at this length, as for transformers (kernel choices depend on the shapes)
    return n / timed(device, lambda: model(tokens))


def measure_codexpc(
    row: dict[str, object], model: Transformer, device: torch.device, prefill: list[int], steps: int, budget: Budget
) -> None:
    vocab = model.config.vocab_size
    model(prompt_tokens(64, vocab, device))  # warm-up: kernels, allocator, cuBLAS handles
    for n in prefill:
        measure(row, f"prefill_{n}", budget, 30, functools.partial(codexpc_prefill, model, n, device))

    def decode() -> float:
        kv = model.new_kv(DECODE_PROMPT + steps + 1)
        token = int(model(prompt_tokens(DECODE_PROMPT, vocab, device), kv)[-1].argmax())

        def run() -> None:
            nonlocal token
            for _ in range(steps):
                token = int(model(torch.tensor([token], device=device), kv)[-1].argmax())  # .item() syncs

        return steps / timed(device, run)

    measure(row, "decode_b1", budget, 60, decode)
    measure(row, "engine_decode_b1", budget, 60, lambda: asyncio.run(engine_decode(model, device, steps)))


async def engine_decode(model: Transformer, device: torch.device, steps: int) -> float:
    """Decode through the serving engine itself (PagedEngine, one sequence, its kernels where the
    device has them): worker thread, sampling, delivery to asyncio."""
    info = EngineInfo(kind="paged", model="bench", checkpoint="", device=str(device), context_length=131072)
    block = 16
    budget = CacheBudget(block, -(-(DECODE_PROMPT + steps + 2) // block) + 1, 1, 2048, bytes_per_block=0)
    engine = PagedEngine(model, budget, info)
    params = SamplingParams(temperature=0.0, max_new_tokens=steps + 1)
    prompt = prompt_tokens(DECODE_PROMPT, model.config.vocab_size, torch.device("cpu")).tolist()
    first = last = 0.0
    count = 0
    async for _ in engine.submit(prompt, params, "bench"):
        count += 1
        last = time.perf_counter()
        first = first or last  # the first token ends the prefill
    await engine.close()
    return (count - 1) / (last - first)


def guarded(name: str, run: Callable[[], Results]) -> Results:
    """One stack's results, or a row saying why it has none (the other stack's numbers survive)."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - a failed load is a result to report
        log.exception("%s failed", name)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {name: {"load_s": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"}}


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ----- transformers -----


def bench_transformers(
    ckpt_dir: Path, device: torch.device, prefill: list[int], steps: int, budget: Budget, flex: bool
) -> Results:
    started = time.perf_counter()
    model = load_transformers(ckpt_dir, device)
    sync(device)
    load_s = time.perf_counter() - started
    results: Results = {}
    for attn in ["eager", "flex_attention"] if flex else ["eager"]:
        row: dict[str, object] = {"load_s": load_s}
        results[f"transformers {attn}"] = row
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        measure_transformers(row, model, attn, device, prefill, steps, budget)
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model
    free(device)
    return results


def load_transformers(ckpt_dir: Path, device: torch.device) -> Any:
    import importlib.util

    from transformers import GptOssForCausalLM, Mxfp4Config  # type: ignore[attr-defined]

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    # Dequantized: transformers' MXFP4 kernels come from the `kernels` package, over the network.
    options: dict[str, Any] = {"quantization_config": Mxfp4Config(dequantize=True), "dtype": dtype, "attn_implementation": "eager"}
    if device.type == "cpu":
        return GptOssForCausalLM.from_pretrained(ckpt_dir, **options).eval()
    if importlib.util.find_spec("accelerate") is not None:
        return GptOssForCausalLM.from_pretrained(ckpt_dir, device_map=str(device), **options).eval()
    log.warning("accelerate is not installed: transformers loads on the CPU, then moves to %s", device)
    return GptOssForCausalLM.from_pretrained(ckpt_dir, **options).to(device).eval()  # type: ignore[arg-type]


def measure_transformers(
    row: dict[str, object],
    model: Any,
    attn: str,
    device: torch.device,
    prefill: list[int],
    steps: int,
    budget: Budget,
) -> None:
    try:
        model.set_attn_implementation(attn)
    except Exception as exc:  # noqa: BLE001 - an attention kind this install lacks is a result, not a crash
        row["load_s"] = f"cannot use {attn}: {exc}"[:100]
        return
    for n in prefill:
        measure(row, f"prefill_{n}", budget, 60, functools.partial(hf_prefill, model, n, device))
    measure(row, "decode_b1", budget, 90, lambda: hf_decode(model, steps, device))


@torch.inference_mode()
def hf_prefill(model: Any, n: int, device: torch.device) -> float:
    ids = prompt_tokens(n, model.config.vocab_size, device)[None]
    model(ids, use_cache=False, logits_to_keep=1)  # warm-up at this length (flex compiles per shape)
    return n / timed(device, lambda: model(ids, use_cache=False, logits_to_keep=1))


@torch.inference_mode()
def hf_decode(model: Any, steps: int, device: torch.device) -> float:
    """Tokens/s of the decode steps alone: generate(1 + steps) minus generate(1)."""
    ids = prompt_tokens(DECODE_PROMPT, model.config.vocab_size, device)[None]

    def generate(n: int) -> None:
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)

    generate(4)  # warm-up
    one = timed(device, lambda: generate(1))
    many = timed(device, lambda: generate(1 + steps))
    return steps / (many - one)


# ----- report -----

METRICS = [("load_s", "load (s)"), ("decode_b1", "decode b1 (tok/s)"), ("engine_decode_b1", "engine decode b1 (tok/s)")]


def table(results: Results, prefill: list[int], header: str) -> str:
    metrics = METRICS[:1] + [(f"prefill_{n}", f"prefill {n} (tok/s)") for n in prefill] + METRICS[1:]
    metrics.append(("peak_gib", "peak GPU memory (GiB)"))
    names = list(results)
    lines = [header, "", "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in metrics:
        cells = [fmt(results[name].get(key)) for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def best_of_transformers(results: Results, prefill: list[int]) -> dict[str, object]:
    """The faster transformers attention per metric, as the figure to beat."""
    best: dict[str, object] = {}
    keys = [f"prefill_{n}" for n in prefill] + ["decode_b1"]
    for key in keys:
        numbers = [r[key] for name, r in results.items() if name.startswith("transformers") and isinstance(r.get(key), float)]
        best[key] = max(numbers) if numbers else "-"  # type: ignore[type-var]
    return best


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="20b")
    parser.add_argument("--checkpoint", type=Path, help="folder for the random HF-layout checkpoint (reused)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prefill", help="comma-separated prompt lengths")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip measurements past this")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    budget = Budget(args.budget_s)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else torch.device(args.device)
    prefill = [int(n) for n in (args.prefill or DEFAULT_PREFILL[args.size]).split(",")]
    folder = args.checkpoint or Path("/tmp") / f"codexpc-bench-{args.size}-hf"

    started = time.perf_counter()
    ckpt = ensure_checkpoint(args.size, folder)
    write_s = time.perf_counter() - started
    results = guarded("codexpc torch", lambda: bench_codexpc(ckpt, device, prefill, args.decode_tokens, budget))
    if not args.no_transformers:
        results |= guarded(
            "transformers",
            lambda: bench_transformers(ckpt, device, prefill, args.decode_tokens, budget, flex=not args.no_flex),
        )
        results["transformers best"] = best_of_transformers(results, prefill)

    versions = f"torch {torch.__version__}"
    if not args.no_transformers:
        import transformers

        versions += f", transformers {transformers.__version__}"
    header = (
        f"## Baseline, gpt-oss-{args.size} shapes, random weights, on {device_name(device)}\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {versions}; python {platform.python_version()}; "
        f"checkpoint ready in {write_s:.0f} s; decode = {args.decode_tokens} greedy steps after a "
        f"{DECODE_PROMPT}-token prompt"
    )
    report = table(results, prefill, header)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")
    stem = args.out / f"baseline-{args.size}-{slug}"
    stem.with_suffix(".md").write_text(report + "\n")
    stem.with_suffix(".json").write_text(json.dumps({"device": device_name(device), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
