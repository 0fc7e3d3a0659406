"""The byte layout of Metal's model.bin (openai/gpt-oss `gpt_oss/metal`), as plain data.

16 B   magic "GPT-OSS v1.0" + u32 0
16 B   model UUID, 68 B model header (u32/f32 fields below), 16 B Apple-GPU layout UUID
16 B   tiktoken tokenizer UUID, 16 B header (n_special, n_text, regex_size, tokens_size)
       n_special 16-byte UUIDs (ids n_text..), the regex + NUL, per text token u16 length + bytes
pad to 16 KiB, then the shared weights, each 16-byte aligned: embedding, per block
       (attn norm, qkv weight, qkv bias, sinks, out weight, out bias, mlp norm, gate weight,
       gate bias), final norm, unembedding
per block: pad to 16 KiB, then per expert, each 16-byte aligned: mlp1 blocks, mlp1 scales,
       mlp1 bias, mlp2 blocks, mlp2 scales, mlp2 bias
"""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass
from typing import NamedTuple

import torch

from codexpc.checkpoint.tensors import TensorSpec, block_specs
from codexpc.engine.model_config import ModelConfig

MAGIC = b"GPT-OSS v1.0" + struct.pack("<I", 0)
MODEL_UUID = uuid.UUID("df52dc86-1789-4ed0-a295-66f10508145b").bytes
LAYOUT_UUID = uuid.UUID("229177a8-5775-4268-bfd8-d588b351c56d").bytes  # Apple GPU layout
TOKENIZER_UUID = uuid.UUID("7401aded-2a95-40cb-b782-9ccebaafe72b").bytes  # tiktoken
MODEL_HEADER = struct.Struct("<IIIIIIfIIIIffffff")


class ModelHeader(NamedTuple):
    """The model header's fields, in file order (u32 unless noted)."""

    context_length: int
    num_blocks: int
    num_experts: int
    num_active_experts: int
    embedding_dim: int
    mlp_dim: int
    swiglu_limit: float  # f32
    head_dim: int
    num_heads: int
    num_kv_heads: int
    attention_window: int
    rope_theta: float  # f32, and so are the rest
    interpolation_scale: float
    yarn_offset: float
    yarn_scale: float
    yarn_multiplier: float
    rmsnorm_epsilon: float


TOKENIZER_HEADER = struct.Struct("<IIII")
PREFIX_BYTES = len(MAGIC) + 16 + MODEL_HEADER.size + 16 + 16 + TOKENIZER_HEADER.size
PAGE = 16384  # Apple Silicon's page: the loader maps weights from a page boundary
ALIGN = 16
UE8_OFFSET = 14  # Metal stores MXFP4 exponents biased by 127 + 14
N_SPECIAL = 16  # ids 199998..200013
VOCAB_SIZE = 199998 + N_SPECIAL  # the o200k ranks, then the specials up to <|refusal|>
SPECIAL_UUIDS = {  # token id -> UUID; ids not named here get 16 zero bytes
    200000: uuid.UUID("07d7da55-b346-4cff-8b37-7cefacf8a3e8").bytes,  # <|untrusted|>
    200002: uuid.UUID("f799ff69-1992-43c4-a3d8-d831f475dc75").bytes,  # <|return|>
    200003: uuid.UUID("c0bb14c7-6022-49da-ad08-792d67e8b470").bytes,  # <|constrain|>
    200005: uuid.UUID("fd3dda11-c8ab-4033-876e-d93deb172c93").bytes,  # <|channel|>
    200006: uuid.UUID("55a77c2f-8a01-4c54-8ac2-313bfc7e208d").bytes,  # <|start|>
    200007: uuid.UUID("fcac2f6d-4705-4f6b-b228-642accac7238").bytes,  # <|end|>
    200008: uuid.UUID("16e40431-f47f-4b22-b59b-8b278fc30a54").bytes,  # <|message|>
    200012: uuid.UUID("1220f796-e388-4de5-b487-fe2eb5fe03c0").bytes,  # <|call|>
    200013: uuid.UUID("e15ba702-28c4-4292-ab8f-ffa434709128").bytes,  # <|refusal|>
}
_SHARED_SUFFIXES = (
    "attn.norm.scale", "attn.qkv.weight", "attn.qkv.bias", "attn.sinks", "attn.out.weight",
    "attn.out.bias", "mlp.norm.scale", "mlp.gate.weight", "mlp.gate.bias",
)  # fmt: skip
_EXPERT_SUFFIXES = (
    "mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales", "mlp.mlp1_bias",
    "mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales", "mlp.mlp2_bias",
)  # fmt: skip


def align(offset: int, to: int) -> int:
    return -(-offset // to) * to


@dataclass(frozen=True)
class Placement:
    """Where a canonical tensor lies: `count` pieces of `spec.nbytes // count` bytes, `stride` apart."""

    spec: TensorSpec
    offset: int
    count: int = 1
    stride: int = 0

    @property
    def end(self) -> int:
        return self.offset + (self.count - 1) * self.stride + self.spec.nbytes // self.count


def yarn_fields(config: ModelConfig) -> tuple[float, float, float, float]:
    """The model header's YaRN numbers: interpolation scale, offset, scale, multiplier."""
    half, log_theta = config.head_dim / 2, math.log(config.rope_theta)
    low = half * math.log(config.initial_context_length / (config.rope_ntk_beta * 2 * math.pi)) / log_theta
    high = half * math.log(config.initial_context_length / (config.rope_ntk_alpha * 2 * math.pi)) / log_theta
    return (
        1.0 / config.rope_scaling_factor,
        -low / (high - low),
        1.0 / (high - low),
        0.1 * math.log(config.rope_scaling_factor) + 1.0,
    )


def tokenizer_bytes(config: ModelConfig, tokens: list[bytes], pattern: str) -> bytes:
    """From the tokenizer UUID to the last token's bytes."""
    n_special = config.vocab_size - len(tokens)
    body = b"".join(struct.pack("<H", len(t)) + t for t in tokens)
    regex = pattern.encode("ascii") + b"\0"
    specials = b"".join(SPECIAL_UUIDS.get(len(tokens) + i, bytes(16)) for i in range(n_special))
    header = TOKENIZER_HEADER.pack(n_special, len(tokens), len(regex), len(body))
    return TOKENIZER_UUID + header + specials + regex + body


def plan(config: ModelConfig, weights_start: int) -> list[Placement]:
    """Every canonical tensor's place in the file (`config.vocab_size` = the file's vocabulary)."""
    h, e = config.hidden_size, config.num_experts
    placements: list[Placement] = []
    offset = weights_start

    def put(spec: TensorSpec) -> None:
        nonlocal offset
        offset = align(offset, ALIGN)
        placements.append(Placement(spec, offset))
        offset += spec.nbytes

    put(TensorSpec("embedding.weight", (config.vocab_size, h), torch.bfloat16))
    blocks = [
        {s.name.split(".", 2)[2]: s for s in block_specs(config, i)} for i in range(config.num_hidden_layers)
    ]
    for specs in blocks:
        for suffix in _SHARED_SUFFIXES:
            put(specs[suffix])
    put(TensorSpec("norm.scale", (h,), torch.bfloat16))
    put(TensorSpec("unembedding.weight", (config.vocab_size, h), torch.bfloat16))
    for specs in blocks:
        offset = align(offset, PAGE)
        expert_parts = [align(specs[s].nbytes // e, ALIGN) for s in _EXPERT_SUFFIXES]
        stride = sum(expert_parts)
        for suffix, start in zip(_EXPERT_SUFFIXES, _prefix_sums(expert_parts), strict=True):
            placements.append(Placement(specs[suffix], offset + start, count=e, stride=stride))
        offset += e * stride
    return placements


def _prefix_sums(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for size in sizes:
        out.append(total)
        total += size
    return out
