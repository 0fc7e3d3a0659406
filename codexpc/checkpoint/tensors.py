"""The canonical tensors of a gpt-oss model: names, shapes and dtypes, derived from its config.

Canonical names are those of the `original/` layout (openai/gpt-oss `gpt_oss/torch/model.py`).
Expert weights stay MXFP4: `*.blocks` hold 32 e2m1 values in 16 bytes (low nibble first),
`*.scales` one u8 power-of-two exponent (bias 127) per block of 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from codexpc.engine.model_config import ModelConfig

MXFP4_BLOCK = 32  # values per scale
BYTES_PER_BLOCK = 16  # two e2m1 values per byte

# safetensors dtype names <-> torch dtypes (only those a gpt-oss checkpoint may hold)
ST_DTYPES: dict[str, torch.dtype] = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I32": torch.int32,
    "I64": torch.int64,
}
ST_NAMES: dict[torch.dtype, str] = {v: k for k, v in ST_DTYPES.items()}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def st_dtype(self) -> str:
        return ST_NAMES[self.dtype]


def _bf16(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), torch.bfloat16)


def _u8(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), torch.uint8)


def block_specs(config: ModelConfig, i: int) -> list[TensorSpec]:
    """One transformer block, in the order the `original/` checkpoint stores it."""
    h, e, inter = config.hidden_size, config.num_experts, config.intermediate_size
    qkv = config.head_dim * (config.num_attention_heads + 2 * config.num_key_value_heads)
    p = f"block.{i}"
    return [
        _bf16(f"{p}.attn.norm.scale", h),
        _bf16(f"{p}.attn.qkv.weight", qkv, h),  # rows: q heads, then k heads, then v heads
        _bf16(f"{p}.attn.qkv.bias", qkv),
        _bf16(f"{p}.attn.sinks", config.num_attention_heads),
        _bf16(f"{p}.attn.out.weight", h, config.head_dim * config.num_attention_heads),
        _bf16(f"{p}.attn.out.bias", h),
        _bf16(f"{p}.mlp.norm.scale", h),
        _bf16(f"{p}.mlp.gate.weight", e, h),
        _bf16(f"{p}.mlp.gate.bias", e),
        # mlp1 rows interleave gate and up: row 2j is gate j, row 2j+1 is up j (swiglu's x[..., ::2])
        _u8(f"{p}.mlp.mlp1_weight.blocks", e, 2 * inter, h // MXFP4_BLOCK, BYTES_PER_BLOCK),
        _u8(f"{p}.mlp.mlp1_weight.scales", e, 2 * inter, h // MXFP4_BLOCK),
        _bf16(f"{p}.mlp.mlp1_bias", e, 2 * inter),
        _u8(f"{p}.mlp.mlp2_weight.blocks", e, h, inter // MXFP4_BLOCK, BYTES_PER_BLOCK),
        _u8(f"{p}.mlp.mlp2_weight.scales", e, h, inter // MXFP4_BLOCK),
        _bf16(f"{p}.mlp.mlp2_bias", e, h),
    ]


def canonical_specs(config: ModelConfig) -> list[TensorSpec]:
    """Every tensor of the model, in `original/` order."""
    specs = [_bf16("embedding.weight", config.vocab_size, config.hidden_size)]
    for i in range(config.num_hidden_layers):
        specs.extend(block_specs(config, i))
    specs.append(_bf16("norm.scale", config.hidden_size))
    specs.append(_bf16("unembedding.weight", config.vocab_size, config.hidden_size))
    return specs


def parameter_count(config: ModelConfig) -> int:
    """Parameters as the model counts them: an MXFP4 byte holds two, scales are not parameters."""
    total = 0
    for spec in canonical_specs(config):
        if spec.name.endswith(".blocks"):
            total += spec.numel * 2
        elif not spec.name.endswith(".scales"):
            total += spec.numel
    return total
