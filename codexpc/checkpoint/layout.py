"""Which of the three layouts a folder or file holds.

A published gpt-oss repository holds all three: the transformers layout at its root, `original/`
and `metal/model.bin` beside it. Given such a root we pick the transformers layout; given the
`original/` or `metal/` folder, or the `model.bin` file, that one.
"""

from __future__ import annotations

from pathlib import Path

from codexpc.checkpoint.base import Layout
from codexpc.errors import CheckpointError

METAL_FILE = "model.bin"


def _is_hf(folder: Path) -> bool:
    if (folder / "model.safetensors.index.json").is_file() or any(folder.glob("model-*-of-*.safetensors")):
        return True
    # a single unsharded model.safetensors: transformers' config.json names a model_type, the reference's does not
    config = folder / "config.json"
    try:
        return config.is_file() and config.stat().st_size < 1 << 20 and '"model_type"' in config.read_text()
    except (OSError, UnicodeDecodeError):
        return False


def _is_original(folder: Path) -> bool:
    return (folder / "dtypes.json").is_file() or (
        (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    )


def detect_layout(path: Path) -> Layout:
    """The layout at `path`; raise CheckpointError saying what was looked for when there is none."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".bin":
            return "metal"
        raise CheckpointError(f"{path}: a single file must be a Metal model.bin")
    if not path.is_dir():
        raise CheckpointError(f"{path}: missing file or folder")
    if _is_hf(path):
        return "hf"
    if _is_original(path):
        return "original"
    if (path / METAL_FILE).is_file():
        return "metal"
    raise CheckpointError(
        f"{path}: no gpt-oss checkpoint found (looked for model.safetensors.index.json or "
        f"model-*-of-*.safetensors, config.json with dtypes.json or model.safetensors, and {METAL_FILE})"
    )


def resolve(path: Path, layout: Layout) -> Path:
    """The folder or file a layout's reader opens."""
    if layout == "metal" and path.is_dir():
        return path / METAL_FILE
    return path
