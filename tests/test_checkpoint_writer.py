"""Random checkpoints: sizes, shapes of the real models, weights sane for a forward pass."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from codexpc.checkpoint import SIZES, describe, write_from_size
from codexpc.checkpoint.hf import MAX_SHARD_BYTES, hf_parts, plan_shards, shard_name
from codexpc.checkpoint.metal import metal_config
from codexpc.checkpoint.metal_format import PAGE, plan
from codexpc.checkpoint.random_weights import random_tensor
from codexpc.checkpoint.tensors import canonical_specs, parameter_count
from codexpc.engine.model_config import GPT_OSS_20B, GPT_OSS_120B, TINY
from codexpc.errors import ConfigError


def _dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    lut = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    values = torch.stack([lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]], dim=-1).flatten(-2)
    return (values * torch.exp2(scales.float() - 127).unsqueeze(-1)).flatten(-2)


def test_sizes_are_the_published_models() -> None:
    assert set(SIZES) == {"tiny", "20b", "120b"}
    assert round(parameter_count(GPT_OSS_20B) / 1e9, 1) == 20.9
    assert round(parameter_count(GPT_OSS_120B) / 1e9, 1) == 116.8
    gib = sum(s.nbytes for s in canonical_specs(GPT_OSS_20B)) / 2**30
    assert 12.5 < gib < 13.0  # "about 12.8 GiB" on disk


def test_20b_shapes() -> None:
    specs = {s.name: s for s in canonical_specs(GPT_OSS_20B)}
    assert specs["block.0.mlp.mlp1_weight.blocks"].shape == (32, 5760, 90, 16)
    assert specs["block.0.mlp.mlp2_weight.scales"].shape == (32, 2880, 90)
    assert specs["block.23.attn.qkv.weight"].shape == (5120, 2880)
    assert specs["unembedding.weight"].shape == (201088, 2880)


def test_metal_plan_of_20b_page_aligns_each_layers_experts() -> None:
    placements = plan(metal_config(GPT_OSS_20B), weights_start=PAGE * 1000)
    firsts = [p for p in placements if p.spec.name.endswith("mlp1_weight.blocks")]
    assert len(firsts) == 24 and all(p.offset % PAGE == 0 and p.count == 32 for p in firsts)
    assert all(p.offset % 16 == 0 for p in placements)


def test_random_weights_have_forward_pass_scales() -> None:
    specs = {s.name: s for s in canonical_specs(TINY)}
    tensor = {
        name: random_tensor(TINY, specs[name], seed=1)
        for name in specs
        if name.startswith(("block.0.", "norm"))
    }
    target = 1 / math.sqrt(TINY.hidden_size)
    mlp1 = _dequantize(tensor["block.0.mlp.mlp1_weight.blocks"], tensor["block.0.mlp.mlp1_weight.scales"])
    assert 0.6 * target < mlp1.std().item() < 1.5 * target
    assert 0.8 * target < tensor["block.0.attn.qkv.weight"].float().std().item() < 1.2 * target
    assert abs(tensor["norm.scale"].float().mean().item() - 1) < 0.1
    assert tensor["block.0.attn.sinks"].float().abs().max().item() < 5
    scales = tensor["block.0.mlp.mlp2_weight.scales"]
    assert len(scales.unique()) == 2  # two neighbouring exponents, so per-block scaling is exercised


def test_write_from_size_refuses_unknown_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--size '7b'"):
        write_from_size("7b", "hf", tmp_path)
    with pytest.raises(ConfigError, match="--layout 'gguf'"):
        write_from_size("tiny", "gguf", tmp_path)


def test_describe_a_tiny_checkpoint(tmp_path: Path) -> None:
    path = write_from_size("tiny", "original", tmp_path / "tiny")
    info = describe(path)
    assert info["layout"] == "original"
    assert info["parameters"] == parameter_count(TINY)
    assert info["shapes"]["embedding.weight"] == [TINY.vocab_size, TINY.hidden_size]
    assert int(str(info["file_bytes"])) > int(str(info["tensor_bytes"])) > 0
    assert str(info["vocabulary"]).startswith(("ok", "unavailable"))


def test_20b_hf_shards_are_named_like_the_published_repository() -> None:
    specs = [p for s in canonical_specs(GPT_OSS_20B) for p in hf_parts(GPT_OSS_20B, s)]
    shards = plan_shards(specs, MAX_SHARD_BYTES)
    assert [shard_name(i, len(shards)) for i in range(len(shards))] == [
        "model-00000-of-00002.safetensors",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert sum(len(s) for s in shards) == len(specs) == 24 * 19 + 3  # qkv weight and bias split in three
