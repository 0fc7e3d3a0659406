"""A tiny gpt-oss model that codexpc trains itself, on a CPU, to answer in valid Harmony.

ensure_trained_tiny(out_dir=None) -> Path   the checkpoint folder, trained unless cached
main(argv) -> int                           `python -m codexpc.train` / scripts/train_tiny.py

It answers every request with one of four fixed completions (codexpc/train/completions.py):
an analysis and a final answer; an analysis and an `exec_command` call; the same with `shell`;
after a tool's output, an analysis and a final answer. See docs/trained-tiny.md.
"""

from __future__ import annotations

from codexpc.train.cache import ensure_trained_tiny
from codexpc.train.cli import main

__all__ = ["ensure_trained_tiny", "main"]
