"""Write random gpt-oss checkpoints in any layout, from tiny to the exact 120b shapes.

Tensors are generated and written one at a time, so the memory needed is that of the largest
tensor (the 20b's embedding: 1.1 GiB), whatever the model's size.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from codexpc.checkpoint.base import LAYOUTS, Layout
from codexpc.checkpoint.random_weights import random_tensors
from codexpc.engine.config import GPT_OSS_20B, GPT_OSS_120B, TINY, ModelConfig
from codexpc.errors import ConfigError

log = logging.getLogger(__name__)

Size = Literal["tiny", "20b", "120b"]
SIZES: dict[str, ModelConfig] = {"tiny": TINY, "20b": GPT_OSS_20B, "120b": GPT_OSS_120B}


def write_checkpoint(config: ModelConfig, layout: Layout, out: Path, seed: int = 0) -> Path:
    """Write a random checkpoint; return the path `open_checkpoint` takes (a folder, or model.bin)."""
    out = Path(out)
    started = time.monotonic()
    tensors = random_tensors(config, seed)
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
    log.info("wrote random %s checkpoint %s in %.1f s", layout, result, time.monotonic() - started)
    return result


def write_from_size(size: str, layout: str, out: Path, seed: int = 0) -> Path:
    """`codexpc checkpoint write --size --layout --out`: user values checked, then written."""
    if size not in SIZES:
        raise ConfigError(f"--size {size!r} is not one of {', '.join(SIZES)}")
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    return write_checkpoint(SIZES[size], layout, Path(out), seed=seed)  # type: ignore[arg-type]
