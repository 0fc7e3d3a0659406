"""Loading a checkpoint into the model: canonical tensor names, streamed onto the device.

The model is built on the meta device (no memory), given uninitialised device storage, then each
tensor the checkpoint yields is copied straight into its parameter: the host never holds a second
full copy of the weights. The checkpoint reader has validated names, shapes and dtypes already;
the checks here guard the mapping itself and name the tensor that does not fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Protocol

import torch

from codexpc.engine.model import Transformer
from codexpc.engine.model_config import ModelConfig
from codexpc.errors import CheckpointError

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


class TensorSource(Protocol):
    """What loading needs of a checkpoint (codexpc.checkpoint's Checkpoint has it)."""

    @property
    def config(self) -> ModelConfig: ...

    @property
    def nbytes(self) -> int: ...  # of all tensors, for progress

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]: ...


def compute_dtype(device: torch.device) -> torch.dtype:
    """fp32 on the CPU (exact reference numerics), bf16 on GPUs (the checkpoints' own dtype)."""
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def load_model(checkpoint: TensorSource, device: torch.device, dtype: torch.dtype | None = None) -> Transformer:
    dtype = dtype if dtype is not None else compute_dtype(device)
    started = time.monotonic()
    model = Transformer(checkpoint.config, dtype, device=torch.device("meta"))
    model = model.to_empty(device=device)
    targets = dict(model.named_parameters()) | dict(model.named_buffers())
    loaded: set[str] = set()
    loaded_bytes = 0
    last_report = started
    for name, tensor in checkpoint.iter_tensors():
        _copy_into(targets, name, tensor)
        loaded.add(name)
        loaded_bytes += tensor.numel() * tensor.element_size()
        if time.monotonic() - last_report > PROGRESS_EVERY_S:
            last_report = time.monotonic()
            total = max(checkpoint.nbytes, 1)
            log.info("loading weights: %.1f of %.1f GiB (%.0f%%)", loaded_bytes / 2**30, total / 2**30, 100 * loaded_bytes / total)
    missing = sorted(set(targets) - loaded)
    if missing:
        raise CheckpointError(f"the checkpoint lacks {len(missing)} tensors, first {missing[0]}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    log.info(
        "loaded %.2f GiB of weights onto %s in %.1f s", loaded_bytes / 2**30, device, time.monotonic() - started
    )
    return model.eval()


def _copy_into(targets: dict[str, torch.Tensor], name: str, tensor: torch.Tensor) -> None:
    target = targets.get(name)
    if target is None:
        raise CheckpointError(f"unexpected tensor {name} in the checkpoint")
    if tuple(target.shape) != tuple(tensor.shape):
        raise CheckpointError(f"tensor {name} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}")
    # MXFP4 blocks and scales are raw bytes: a float tensor there would be a mapping bug.
    if (target.dtype == torch.uint8) != (tensor.dtype == torch.uint8):
        raise CheckpointError(f"tensor {name} has dtype {tensor.dtype}, expected {target.dtype}")
    with torch.no_grad():
        target.copy_(tensor, non_blocking=False)
