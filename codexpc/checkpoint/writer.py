"""Write random gpt-oss checkpoints in any layout, from tiny to the exact 120b shapes.

Tensors are generated and written one at a time, so the memory needed is that of the largest
tensor (the 20b's embedding: 1.1 GiB), whatever the model's size.

Every random checkpoint carries a RANDOM_MARKER file beside its weights, so that a tool that
finds it served (`codexpc smoke`) knows its output is noise, whoever started the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from codexpc.checkpoint.base import LAYOUTS, Layout
from codexpc.checkpoint.random_weights import random_tensors
from codexpc.checkpoint.tensors import TensorSpec, canonical_specs
from codexpc.engine.model_config import GPT_OSS_20B, GPT_OSS_120B, TINY, ModelConfig
from codexpc.errors import ConfigError

log = logging.getLogger(__name__)

Size = Literal["tiny", "20b", "120b"]
LOG_EVERY_S = 5.0
SIZES: dict[str, ModelConfig] = {"tiny": TINY, "20b": GPT_OSS_20B, "120b": GPT_OSS_120B}
RANDOM_MARKER = "RANDOM_WEIGHTS.txt"
# What the writers put in a folder: what `--force` replaces (nothing else there is touched).
_WRITTEN = ("*.safetensors", "*.json", "model.bin", RANDOM_MARKER)


def write_checkpoint(config: ModelConfig, layout: Layout, out: Path, seed: int = 0) -> Path:
    """Write a random checkpoint; return the path `open_checkpoint` takes (a folder, or model.bin)."""
    if seed < 0:
        raise ConfigError(f"seed {seed} must be a non-negative integer")
    result = write_tensors(config, random_tensors(config, seed), layout, Path(out))
    mark_random(Path(out), f"seed {seed}")
    return result


def mark_random(folder: Path, detail: str) -> None:
    (folder / RANDOM_MARKER).write_text(
        f"Random weights written by `codexpc checkpoint write` ({detail}): for tests and benchmarks.\n"
        "Their output is noise, not Harmony; a response from them may end failed or incomplete.\n",
        encoding="utf-8",
    )


def is_random(checkpoint: Path) -> bool:
    """True for a checkpoint that codexpc wrote with random weights (a folder, or its model.bin)."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return (folder / RANDOM_MARKER).is_file()


def convert_checkpoint(source: Path, layout: Layout, out: Path) -> Path:
    """Rewrite an existing checkpoint in another layout, one tensor at a time."""
    from codexpc.checkpoint import open_checkpoint

    checkpoint = open_checkpoint(source)
    specs = {s.name: s for s in canonical_specs(checkpoint.config)}
    tensors = ((specs[name], tensor) for name, tensor in checkpoint.iter_tensors())
    return write_tensors(checkpoint.config, tensors, layout, Path(out))


def write_tensors(
    config: ModelConfig, tensors: Iterator[tuple[TensorSpec, torch.Tensor]], layout: Layout, out: Path
) -> Path:
    """Write canonical tensors (canonical order) in `layout` under `out`."""
    started = time.monotonic()
    tensors = _logged(tensors, config, out)
    if layout == "original":
        from codexpc.checkpoint.original import write_original

        result = write_original(config, tensors, out)
    elif layout == "hf":
        from codexpc.checkpoint.hf import write_hf
        from codexpc.checkpoint.tokenizer import write_tokenizer_files

        out.mkdir(parents=True, exist_ok=True)
        write_tokenizer_files(out, config)  # first: a missing vocabulary fails before gigabytes are written
        result = write_hf(config, tensors, out)
    elif layout == "metal":
        from codexpc.checkpoint.metal import write_metal

        result = write_metal(config, tensors, out / "model.bin")
    else:
        raise ConfigError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    log.info("wrote %s checkpoint %s in %.1f s", layout, result, time.monotonic() - started)
    return result


def _logged(
    tensors: Iterator[tuple[TensorSpec, torch.Tensor]], config: ModelConfig, out: Path
) -> Iterator[tuple[TensorSpec, torch.Tensor]]:
    """Pass tensors through, logging progress every few seconds (a 120b write takes minutes)."""
    total = sum(s.nbytes for s in canonical_specs(config))
    done, last = 0, time.monotonic()
    for spec, tensor in tensors:
        yield spec, tensor
        done += spec.nbytes
        if time.monotonic() - last > LOG_EVERY_S:
            last = time.monotonic()
            log.info("writing %s: %.1f of %.1f GiB", out, done / 2**30, total / 2**30)


def write_from_size(size: str, layout: str, out: Path, seed: int = 0, force: bool = False) -> Path:
    """`codexpc checkpoint write --size --layout --out [--force]`: user values checked, then
    written; a folder that already holds something is refused unless `force`."""
    if size not in SIZES:
        raise ConfigError(f"--size {size!r} is not one of {', '.join(SIZES)}")
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    out = Path(out)
    _clear_for_write(out, force)
    return write_checkpoint(SIZES[size], layout, out, seed=seed)  # type: ignore[arg-type]


def _clear_for_write(out: Path, force: bool) -> None:
    """Refuse to write over what is in `out`, naming it; with `force`, remove what a writer
    would write there (a checkpoint of another layout or shard count must not leave files)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return
    if not force:
        shown = ", ".join(present[:6]) + (f" and {len(present) - 6} more" if len(present) > 6 else "")
        raise ConfigError(f"--out {out} is not empty ({_what(out)}: {shown}); "
                          "pass --force to overwrite it, or name another folder")
    for pattern in _WRITTEN:
        for path in out.glob(pattern):
            if path.is_file():
                path.unlink()


def _what(out: Path) -> str:
    from codexpc.checkpoint.layout import detect_layout
    from codexpc.errors import CheckpointError

    try:
        layout = detect_layout(out)
    except CheckpointError:
        return "it holds files"
    return f"it holds a {'random ' if is_random(out) else ''}checkpoint in the {layout} layout"
