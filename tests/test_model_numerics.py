"""The model's maths against transformers' GptOssForCausalLM, the oracle for gpt-oss numerics."""

from __future__ import annotations

import pytest
import torch
from transformers import GptOssConfig
from transformers.integrations.mxfp4 import convert_moe_packed_tensors
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from codexpc.engine.config import GPT_OSS_20B, TINY, ModelConfig
from codexpc.engine.model import attention_reference, swiglu, yarn_inv_freq
from codexpc.engine.mxfp4 import FP4_VALUES, dequantize, quantize


def random_mxfp4(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (*shape, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(127 - 20, 127 + 20, shape, dtype=torch.uint8, generator=g)
    return blocks, scales


def test_dequantize_matches_transformers() -> None:
    blocks, scales = random_mxfp4(3, 8, 4)  # [E, rows, groups]
    ours = dequantize(blocks, scales, torch.bfloat16)  # [E, rows, 128]
    theirs = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)  # [E, 128, rows]
    assert torch.equal(ours, theirs.transpose(1, 2))


def test_dequantize_unpacks_low_nibble_first_and_scales_by_powers_of_two() -> None:
    blocks = torch.zeros(2, 1, 16, dtype=torch.uint8)  # [rows, groups, 16]
    blocks[1, 0, 0] = 0x2F  # low nibble 0xF is -6.0, high nibble 0x2 is 1.0
    scales = torch.tensor([[127], [127 + 3]], dtype=torch.uint8)  # 2^0, 2^3
    values = dequantize(blocks, scales, torch.float32)
    assert values.shape == (2, 32)
    assert values[1, :3].tolist() == [-6.0 * 8, 1.0 * 8, 0.0]


def test_quantize_roundtrips_representable_values() -> None:
    codes = torch.randint(0, 16, (4, 64), generator=torch.Generator().manual_seed(3))
    weight = torch.tensor(FP4_VALUES)[codes] * 2.0**-5
    weight[:, ::32] = 6.0 * 2.0**-5  # every block reaches the top of the range: its scale is exact
    blocks, scales = quantize(weight)
    assert torch.equal(dequantize(blocks, scales, torch.float32), weight)


def hf_rope_config(config: ModelConfig) -> GptOssConfig:
    rope = {
        "rope_type": "yarn",
        "rope_theta": config.rope_theta,
        "factor": config.rope_scaling_factor,
        "beta_fast": config.rope_ntk_beta,
        "beta_slow": config.rope_ntk_alpha,
        "truncate": False,
        "original_max_position_embeddings": config.initial_context_length,
    }
    return GptOssConfig(
        head_dim=config.head_dim,
        max_position_embeddings=config.context_length,
        rope_parameters=rope,
        num_hidden_layers=1,
    )


@pytest.mark.parametrize("config", [GPT_OSS_20B, TINY], ids=["20b", "tiny"])
def test_yarn_matches_transformers(config: ModelConfig) -> None:
    inv_freq, concentration = yarn_inv_freq(config)
    their_inv_freq, their_concentration = ROPE_INIT_FUNCTIONS["yarn"](hf_rope_config(config))
    torch.testing.assert_close(inv_freq, their_inv_freq.float(), rtol=1e-6, atol=0)
    assert concentration == pytest.approx(their_concentration)
    assert concentration == pytest.approx(0.1 * torch.log(torch.tensor(32.0)).item() + 1)


def test_swiglu_clamps_gate_above_and_up_both_ways() -> None:
    x = torch.tensor([[10.0, 10.0, -10.0, -10.0, 1.0, 0.5]])  # pairs (gate, up), interleaved
    out = swiglu(x, limit=7.0)
    expected = [7 * torch.sigmoid(torch.tensor(1.702 * 7)) * 8, -10 * torch.sigmoid(torch.tensor(-17.02)) * -6]
    expected.append(torch.sigmoid(torch.tensor(1.702)) * 1.5)
    torch.testing.assert_close(out[0], torch.stack(expected))


def test_sliding_window_sees_exactly_window_positions() -> None:
    # With zero queries every visible key weighs the same, so the output is the mean of the
    # visible values (scaled by the sink's share): the window's width shows in the result.
    n, window = 12, 4
    q = torch.zeros(n, 1, 1, 8)
    k = torch.zeros(n, 1, 8)
    v = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 1, 8)
    sinks = torch.tensor([-1e9])  # a sink that takes no weight
    out = attention_reference(q, k, v, sinks, 0, 0, window)[:, 0]
    expected = torch.tensor([sum(range(max(0, i - window + 1), i + 1)) / min(i + 1, window) for i in range(n)])
    torch.testing.assert_close(out, expected)


def test_sink_column_takes_its_share_of_attention() -> None:
    q = torch.zeros(1, 1, 1, 8)
    k = torch.zeros(1, 1, 8)
    v = torch.ones(1, 1, 8)
    out = attention_reference(q, k, v, torch.tensor([0.0]), 0, 0, 0)
    torch.testing.assert_close(out, torch.full((1, 8), 0.5))  # exp(0) / (exp(0) + exp(sink=0))
