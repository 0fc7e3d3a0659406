"""A codexpc checkpoint (hf, original or Metal layout) into the MLX model, experts kept MXFP4.

The checkpoint package has detected the layout and validated every header; it yields canonical
(name, tensor) pairs as memory-mapped torch views. Each becomes an MLX array in the compute
dtype, one at a time, so the host never holds a second full copy. The MXFP4 experts are not
dequantized: the checkpoint's blocks (16 bytes, 32 e2m1 codes, low nibble first) are the same
bits as MLX's mxfp4 packing (eight codes a u32 word, low nibble first on a little-endian
machine), and its u8 scales are MLX's e8m0 scales, so the bytes are reinterpreted, not
converted. The checks here guard the mapping and name the tensor that does not fit, as
engine/weights.py does for the torch engines.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import mlx.core as mx
import torch

from codexpc.checkpoint import Checkpoint
from codexpc.engine.mlx.model import Transformer, parameter_shapes
from codexpc.errors import CheckpointError

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


def to_mlx(name: str, tensor: torch.Tensor, dtype: mx.Dtype) -> mx.array:
    """One canonical tensor as the MLX model holds it."""
    if name.endswith(".blocks"):  # [E, rows, G, 16] u8 -> [E, rows, G * 4] u32
        if tensor.dtype != torch.uint8:
            raise CheckpointError(f"tensor {name} has dtype {tensor.dtype}, expected uint8 (MXFP4 blocks)")
        packed = mx.array(tensor.contiguous().numpy()).view(mx.uint32)  # [E, rows, G, 4]
        return packed.reshape(*packed.shape[:-2], -1)
    if name.endswith(".scales") and ".mlp" in name:  # the MXFP4 scales; norm scales are floats
        if tensor.dtype != torch.uint8:
            raise CheckpointError(f"tensor {name} has dtype {tensor.dtype}, expected uint8 (MXFP4 scales)")
        return mx.array(tensor.contiguous().numpy())
    if tensor.dtype == torch.uint8:
        raise CheckpointError(f"tensor {name} holds raw bytes where floats were expected")
    if tensor.dtype == torch.bfloat16:  # numpy has no bf16: carry the bits, then reinterpret
        return mx.array(tensor.contiguous().view(torch.int16).numpy()).view(mx.bfloat16).astype(dtype)
    return mx.array(tensor.float().numpy()).astype(dtype)


def load_weights(checkpoint: Checkpoint, dtype: mx.Dtype) -> Transformer:
    """Build the model for the checkpoint's config and fill every parameter from it."""
    if sys.byteorder != "little":  # the u8 -> u32 reinterpretation above assumes it
        raise CheckpointError("the MLX engine's MXFP4 packing needs a little-endian machine")
    started = time.monotonic()
    model = Transformer(checkpoint.config)
    expected = parameter_shapes(model)
    loaded: list[tuple[str, mx.array]] = []
    loaded_bytes, last_report = 0, started
    for name, tensor in checkpoint.iter_tensors():
        array = to_mlx(name, tensor, dtype)
        _check(expected, name, array)
        mx.eval(array)  # read now, while the memory-mapped view is alive; keeps the peak at one tensor
        loaded.append((name, array))
        loaded_bytes += tensor.numel() * tensor.element_size()
        if time.monotonic() - last_report > PROGRESS_EVERY_S:
            last_report = time.monotonic()
            total = max(checkpoint.nbytes, 1)
            log.info("loading weights: %.1f of %.1f GiB (%.0f%%)", loaded_bytes / 2**30, total / 2**30,
                     100 * loaded_bytes / total)
    missing = sorted(set(expected) - {name for name, _ in loaded})
    if missing:
        raise CheckpointError(f"the checkpoint lacks {len(missing)} tensors, first {missing[0]}")
    model.load_weights(loaded, strict=True)
    model.eval()
    log.info("loaded %.2f GiB of weights into MLX (%s) in %.1f s", loaded_bytes / 2**30, dtype,
             time.monotonic() - started)
    return model


def _check(expected: dict[str, tuple[tuple[int, ...], Any]], name: str, array: mx.array) -> None:
    if name not in expected:
        raise CheckpointError(f"unexpected tensor {name} in the checkpoint")
    shape, want = expected[name]
    if tuple(array.shape) != shape:
        raise CheckpointError(f"tensor {name} has shape {tuple(array.shape)}, expected {shape}")
    if (want in (mx.uint8, mx.uint32)) != (array.dtype in (mx.uint8, mx.uint32)):
        raise CheckpointError(f"tensor {name} has dtype {array.dtype}, expected {want}")
