"""gpt-oss checkpoints in their three on-disk layouts: detect, validate, read, write.

open_checkpoint(path)    -> Checkpoint (.config, .layout, .path, .iter_tensors())
detect_layout(path)      -> "original" | "hf" | "metal"
write_checkpoint(config, layout, out, seed=0) -> Path   (random weights, any size)
write_from_size("tiny" | "20b" | "120b", layout, out) -> Path
describe(path)           -> dict for `codexpc checkpoint inspect`
"""

from __future__ import annotations

from pathlib import Path

from codexpc.checkpoint.base import LAYOUTS, Checkpoint, Layout, Progress
from codexpc.checkpoint.layout import detect_layout, resolve
from codexpc.checkpoint.writer import SIZES, convert_checkpoint, write_checkpoint, write_from_size


def open_checkpoint(path: Path | str) -> Checkpoint:
    """Detect the layout and validate everything from headers; no tensor is read yet."""
    path = Path(path)
    layout = detect_layout(path)
    target = resolve(path, layout)
    if layout == "original":
        from codexpc.checkpoint.original import open_original

        return open_original(target)
    if layout == "hf":
        from codexpc.checkpoint.hf import open_hf

        return open_hf(target)
    from codexpc.checkpoint.metal import open_metal

    return open_metal(target)


def describe(checkpoint: Checkpoint | Path | str) -> dict[str, object]:
    """`codexpc checkpoint inspect`: layout, config, shapes, parameters, bytes, vocabulary status."""
    from codexpc.checkpoint.inspect import describe as _describe

    return _describe(checkpoint if isinstance(checkpoint, Checkpoint) else open_checkpoint(checkpoint))


__all__ = [
    "LAYOUTS",
    "SIZES",
    "Checkpoint",
    "Layout",
    "Progress",
    "convert_checkpoint",
    "describe",
    "detect_layout",
    "open_checkpoint",
    "write_checkpoint",
    "write_from_size",
]
