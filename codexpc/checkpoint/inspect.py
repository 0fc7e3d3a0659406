"""`codexpc checkpoint inspect`: what a checkpoint holds, from its headers alone."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from codexpc import vocab
from codexpc.checkpoint.base import Checkpoint
from codexpc.checkpoint.tensors import canonical_specs, parameter_count


def describe(checkpoint: Checkpoint) -> dict[str, Any]:
    """A JSON-ready summary: layout, config, shapes, parameter count, bytes, vocabulary status."""
    config = checkpoint.config
    specs = canonical_specs(config)
    return {
        "path": str(checkpoint.path),
        "layout": checkpoint.layout,
        "config": asdict(config),
        "parameters": parameter_count(config),
        "tensors": len(specs),
        "tensor_bytes": checkpoint.nbytes,
        "file_bytes": sum(f.stat().st_size for f in checkpoint.files),
        "files": [str(f) for f in checkpoint.files],
        "shapes": {
            s.name: [*s.shape]
            for s in specs
            if not s.name.startswith("block.") or s.name.startswith("block.0.")
        },
        "dtypes": sorted({str(s.dtype).removeprefix("torch.") for s in specs}),
        "vocabulary": vocab.status(checkpoint=checkpoint.path),
        "notes": list(checkpoint.notes),
    }
