"""Decoder throughput on one CPU core: tokens per second for long, realistic completions.

A benchmark, not a test. Run from the repository root after `make setup`:
`python bench/decoder_throughput.py [--repeat N]` (or with `PYTHONPATH=.` in a bare venv).
Compares openai-harmony's StreamableParser alone (the floor: the decoder drives it) with
codexpc's HarmonyDecoder on the same tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from openai_harmony import HarmonyEncoding, Role, StreamableParser

from codexpc.harmony.decoder import HarmonyDecoder
from codexpc.harmony.encoding import load_encoding
from codexpc.harmony.tools import ToolRegistry, registry_from_responses

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "codex-0.169" / "responses-request-turn1.json"


def realistic_text() -> str:
    """About 10k tokens of real prose and code: Codex's own instructions, when the fixture is here."""
    if FIXTURE.is_file():
        body = json.loads(FIXTURE.read_text())
        return "\n".join(part["text"] for item in body["input"] for part in item["content"])
    return ("Let me check the repository layout first. Der Bär läuft über die Brücke; 日本語も少し。 🎉\n" * 400)


def completions(encoding: HarmonyEncoding, text: str) -> dict[str, list[int]]:
    args = json.dumps({"cmd": text[:12000]})
    return {
        "analysis + final": encoding.encode(
            f"<|channel|>analysis<|message|>{text}<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>",
            allowed_special="all",
        ),
        "preamble + tool call": encoding.encode(
            f"<|channel|>commentary<|message|>{text[:2000]}<|end|><|start|>assistant<|channel|>commentary "
            f"to=functions.exec_command <|constrain|>json<|message|>{args}<|call|>",
            allowed_special="all",
        ),
    }


def parser_only(encoding: HarmonyEncoding, tokens: list[int], _: ToolRegistry) -> None:
    parser = StreamableParser(encoding, Role.ASSISTANT)
    for token in tokens:
        parser.process(token)
        _ = parser.last_content_delta


def decoder(encoding: HarmonyEncoding, tokens: list[int], registry: ToolRegistry) -> None:
    dec = HarmonyDecoder(encoding, registry)
    for token in tokens:
        dec.feed(token)
    dec.finish("stop")


def best_rate(fn: Callable[..., None], encoding: HarmonyEncoding, tokens: list[int], registry: ToolRegistry, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(encoding, tokens, registry)
        best = min(best, time.perf_counter() - start)
    return len(tokens) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as promised
    encoding = load_encoding()
    fixture_tools = json.loads(FIXTURE.read_text())["tools"] if FIXTURE.is_file() else []
    registry, _ = registry_from_responses(fixture_tools or [{"type": "function", "name": "exec_command"}])
    print(f"{'completion':<22} {'tokens':>7} {'parser tok/s':>13} {'decoder tok/s':>14} {'overhead':>9}")
    for name, tokens in completions(encoding, realistic_text()).items():
        base = best_rate(parser_only, encoding, tokens, registry, repeat)
        ours = best_rate(decoder, encoding, tokens, registry, repeat)
        print(f"{name:<22} {len(tokens):>7} {base:>13,.0f} {ours:>14,.0f} {base / ours:>8.2f}x")


if __name__ == "__main__":
    main()
