"""The model's maths against transformers' GptOssForCausalLM, the oracle for gpt-oss numerics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import GptOssConfig, GptOssForCausalLM, Mxfp4Config
from transformers.integrations.mxfp4 import convert_moe_packed_tensors
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from codexpc.checkpoint import open_checkpoint, write_checkpoint
from codexpc.engine import model as model_module
from codexpc.engine.model import Transformer, attention_reference, swiglu, yarn_inv_freq
from codexpc.engine.model_config import GPT_OSS_20B, TINY, ModelConfig
from codexpc.engine.mxfp4 import FP4_VALUES, dequantize, quantize
from codexpc.engine.weights import load_model
from codexpc.errors import CheckpointError


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


# ----- the whole model, through real files on disk -----

PROMPT_LEN = 5 * TINY.sliding_window + 3  # longer than the window: the windowed layers matter


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tiny")
    return {layout: write_checkpoint(TINY, layout, out / layout, seed=0) for layout in ("hf", "original", "metal")}


@pytest.fixture(scope="module")
def reference(tiny_files: dict[str, Path]) -> GptOssForCausalLM:
    """transformers' model from the Hugging Face files, experts dequantized, fp32, eager attention."""
    model = GptOssForCausalLM.from_pretrained(
        tiny_files["hf"],
        quantization_config=Mxfp4Config(dequantize=True),
        dtype=torch.float32,
        attn_implementation="eager",
    )
    # transformers <= 5.17 dequantizes the experts to bf16 whatever `dtype` asks (integrations/mxfp4.py,
    # Mxfp4Dequantize.convert calls convert_moe_packed_tensors without a dtype), and its grouped_mm experts
    # then round the fp32 activations to bf16: logits ~0.03 off. MXFP4 values are exact in bf16, so this
    # cast is lossless and gives every version the same fp32 model.
    model = model.to(torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    return model.eval()


@pytest.fixture(scope="module")
def ours(tiny_files: dict[str, Path]) -> Transformer:
    return load_model(open_checkpoint(tiny_files["hf"]), torch.device("cpu"))


def prompt(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (PROMPT_LEN,), generator=torch.Generator().manual_seed(seed))


def test_logits_match_transformers(reference: GptOssForCausalLM, ours: Transformer) -> None:
    tokens = prompt()
    with torch.no_grad():
        expected = reference(tokens[None]).logits[0]  # [T, V]
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours(tokens, all_logits=True), expected, atol=1e-4, rtol=1e-4)
    assert expected.std() > 0.1  # random weights that still produce varied logits


@pytest.mark.parametrize("layout", ["original", "metal"])
def test_other_layouts_from_the_same_seed_are_the_same_model(
    tiny_files: dict[str, Path], ours: Transformer, layout: str
) -> None:
    other = load_model(open_checkpoint(tiny_files[layout]), torch.device("cpu"))
    vocab = other.config.vocab_size  # Metal keeps 200014 rows: it drops the reserved tail
    tokens = prompt(1) % vocab
    expected = ours(tokens, all_logits=True)[:, :vocab]
    torch.testing.assert_close(other(tokens, all_logits=True), expected, atol=0, rtol=0)


def test_greedy_decode_matches_transformers_generate_for_64_steps(
    reference: GptOssForCausalLM, ours: Transformer
) -> None:
    tokens = prompt(2)
    with torch.no_grad():
        generated = reference.generate(
            tokens[None], max_new_tokens=64, do_sample=False, min_new_tokens=64, pad_token_id=0
        )[0, PROMPT_LEN:].tolist()
    kv = ours.new_kv()
    logits = ours(tokens, kv)
    decoded: list[int] = []
    for _ in range(64):
        decoded.append(int(logits[-1].argmax()))
        logits = ours(torch.tensor(decoded[-1:]), kv)
    assert decoded == generated
    assert len(set(decoded)) > 4


class _Tensors:
    """A TensorSource over a dict: the loader's input with one thing broken on purpose."""

    def __init__(self, config: ModelConfig, tensors: dict[str, torch.Tensor]) -> None:
        self.config = config
        self._tensors = tensors

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors.values())

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from self._tensors.items()


def test_loading_refuses_missing_unexpected_and_misshapen_tensors(tiny_files: dict[str, Path]) -> None:
    tensors = open_checkpoint(tiny_files["original"]).state_dict()
    cpu = torch.device("cpu")
    missing = {k: v for k, v in tensors.items() if k != "norm.scale"}
    with pytest.raises(CheckpointError, match="norm.scale"):
        load_model(_Tensors(TINY, missing), cpu)
    with pytest.raises(CheckpointError, match="block.0.attn.extra"):
        load_model(_Tensors(TINY, tensors | {"block.0.attn.extra": torch.zeros(1)}), cpu)
    with pytest.raises(CheckpointError, match="block.1.attn.sinks"):
        load_model(_Tensors(TINY, tensors | {"block.1.attn.sinks": torch.zeros(3)}), cpu)


def test_query_chunks_and_key_slices_give_the_unchunked_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(4)
    q, k, v = torch.randn(40, 2, 3, 8, generator=g), torch.randn(45, 2, 8, generator=g), torch.randn(45, 2, 8, generator=g)
    sinks = torch.randn(6, generator=g)
    for window in (0, 7):
        whole = attention_reference(q, k, v, sinks, q_start=5, k_start=0, window=window)
        monkeypatch.setattr(model_module, "ATTENTION_SCORE_BUDGET", 6 * 45 * 3)  # chunks of 3 queries
        chunked = attention_reference(q, k, v, sinks, q_start=5, k_start=0, window=window)
        monkeypatch.undo()
        torch.testing.assert_close(chunked, whole)


def test_gathered_and_grouped_experts_agree(ours: Transformer) -> None:
    mlp = ours.block[1].mlp
    t = torch.randn(6, TINY.hidden_size, generator=torch.Generator().manual_seed(5))
    top = torch.topk(mlp.gate(t), k=TINY.experts_per_token, dim=-1)
    weights = torch.softmax(top.values, dim=-1)
    from codexpc.engine.kernels import moe_mxfp4

    gathered = moe_mxfp4._gathered(t, top.indices, weights, mlp.expert_weights())
    grouped = moe_mxfp4._grouped(t, top.indices, weights, mlp.expert_weights())
    torch.testing.assert_close(gathered, grouped, atol=1e-5, rtol=1e-5)
    assert gathered.abs().max() > 0
