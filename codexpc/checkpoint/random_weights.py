"""Random weights with gpt-oss's exact shapes, sane for a forward pass, fast at any size.

Each tensor is a pure function of (seed, name), so every layout written from the same seed holds
the same canonical tensors. Tensors are filled in chunks of CHUNK elements, each chunk from its
own SFC64 stream, on a thread pool: numpy releases the GIL while it fills, so a 16-core host
generates the 20b's 13 GiB in seconds, and only one tensor is ever in memory.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from codexpc.checkpoint.tensors import TensorSpec, canonical_specs
from codexpc.engine.model_config import ModelConfig

CHUNK = 1 << 22  # elements per independent random stream; fixed, so values never depend on threads
# std of a uniformly random e2m1 value: sqrt(mean of squares of 0, .5, 1, 1.5, 2, 3, 4, 6) = 2.93
E2M1_STD = math.sqrt((0 + 0.25 + 1 + 2.25 + 4 + 9 + 16 + 36) / 8)

ChunkFiller = Callable[[torch.Tensor, np.random.Generator], None]

_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1), thread_name_prefix="randw")
    return _pool


def _stream(seed: int, name: str, chunk: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.SFC64(np.random.SeedSequence([seed, zlib.crc32(name.encode()), chunk]))
    )


def _fill(out: torch.Tensor, seed: int, name: str, fill_chunk: ChunkFiller) -> torch.Tensor:
    flat = out.view(-1)
    starts = range(0, flat.numel(), CHUNK)
    list(_threads().map(lambda s: fill_chunk(flat[s : s + CHUNK], _stream(seed, name, s // CHUNK)), starts))
    return out


def normal(spec: TensorSpec, seed: int, mean: float, std: float) -> torch.Tensor:
    def chunk(dst: torch.Tensor, rng: np.random.Generator) -> None:
        values = rng.standard_normal(dst.numel(), dtype=np.float32)
        dst.copy_(torch.from_numpy(values).mul_(std).add_(mean))  # rounds to bf16 here

    return _fill(torch.empty(spec.shape, dtype=spec.dtype), seed, spec.name, chunk)


def random_bytes(spec: TensorSpec, seed: int) -> torch.Tensor:
    """Uniform random e2m1 nibbles: every one of the 16 codes equally likely."""

    def chunk(dst: torch.Tensor, rng: np.random.Generator) -> None:
        dst.copy_(torch.frombuffer(bytearray(rng.bytes(dst.numel())), dtype=torch.uint8))

    return _fill(torch.empty(spec.shape, dtype=torch.uint8), seed, spec.name, chunk)


def mxfp4_scales(spec: TensorSpec, seed: int, fan_in: int) -> torch.Tensor:
    """Exponents so the dequantized weights have std near 1/sqrt(fan_in); two neighbours, at random."""
    target = 1.0 / math.sqrt(fan_in)
    top = 127 + round(math.log2(target / E2M1_STD) + 0.25)  # +0.25: the lower neighbour pulls the std down

    def chunk(dst: torch.Tensor, rng: np.random.Generator) -> None:
        dst.copy_(torch.from_numpy(rng.integers(top - 1, top + 1, dst.numel(), dtype=np.uint8)))

    return _fill(torch.empty(spec.shape, dtype=torch.uint8), seed, spec.name, chunk)


def random_tensor(config: ModelConfig, spec: TensorSpec, seed: int) -> torch.Tensor:
    """The canonical tensor `spec.name` of a random model."""
    name, h = spec.name, config.hidden_size
    if name.endswith(".blocks"):
        return random_bytes(spec, seed)
    if name.endswith("mlp1_weight.scales"):
        return mxfp4_scales(spec, seed, fan_in=h)
    if name.endswith("mlp2_weight.scales"):
        return mxfp4_scales(spec, seed, fan_in=config.intermediate_size)
    if name.endswith("norm.scale"):
        return normal(spec, seed, mean=1.0, std=0.1)  # RMSNorm gains near 1
    if name.endswith("attn.sinks"):
        return normal(spec, seed, mean=0.0, std=0.5)  # a small logit per head for the extra column
    if name == "embedding.weight":
        return normal(spec, seed, mean=0.0, std=1.0)
    if name.endswith(".bias"):
        return normal(spec, seed, mean=0.0, std=0.1 if "qkv" in name or "gate" in name else 0.02)
    if name.endswith(("mlp1_bias", "mlp2_bias")):
        return normal(spec, seed, mean=0.0, std=0.02)
    if name.endswith(".weight"):
        return normal(spec, seed, mean=0.0, std=1.0 / math.sqrt(spec.shape[-1]))  # fan_in is the last dim
    raise AssertionError(f"no initialiser for {name}")


def random_tensors(config: ModelConfig, seed: int) -> Iterator[tuple[TensorSpec, torch.Tensor]]:
    """Every canonical tensor, in `original/` order, one at a time."""
    for spec in canonical_specs(config):
        yield spec, random_tensor(config, spec, seed)
