"""An opened checkpoint: its layout, config, and a plan for reading each canonical tensor.

Opening builds the whole plan from headers alone (every check passes before any tensor byte is
read); `iter_tensors()` then walks the plan and yields memory-mapped views, one tensor at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

Layout = Literal["original", "hf", "metal"]
LAYOUTS: tuple[Layout, ...] = ("original", "hf", "metal")
Progress = Callable[[int, int], None]  # (bytes_done, bytes_total)


@dataclass(frozen=True)
class TensorSource:
    """Where one canonical tensor comes from, and how to read it."""

    name: str
    file: Path
    nbytes: int  # bytes read from disk
    read: Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # the folder or file that was opened
    layout: Layout
    config: ModelConfig
    files: tuple[Path, ...]  # every file the tensors come from
    sources: tuple[TensorSource, ...]  # in canonical order
    notes: tuple[str, ...] = ()  # what the layout could not carry (for `describe`)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.sources)

    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def iter_tensors(self, progress: Progress | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """Canonical (name, tensor) pairs, MXFP4 kept as uint8 blocks and scales.

        Tensors are views of a memory map (the page cache), so `.to(device)` is the only copy.
        """
        total, done = self.nbytes, 0
        for source in self.sources:
            tensor = source.read()
            done += source.nbytes
            if progress is not None:
                progress(done, total)
            yield source.name, tensor
        log.debug(
            "read %d tensors (%d bytes) from %s checkpoint %s",
            len(self.sources),
            total,
            self.layout,
            self.path,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor at once: for tests and tiny models only."""
        return dict(self.iter_tensors())
