"""A written Hugging Face tiny checkpoint loads in transformers, with our exact tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from openai_harmony import HarmonyEncoding

from codexpc.checkpoint import open_checkpoint, write_checkpoint
from codexpc.checkpoint.hf import split
from codexpc.checkpoint.tensors import canonical_specs
from codexpc.engine.model_config import TINY

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(TINY, "hf", tmp_path_factory.mktemp("hf") / "tiny", seed=3)


def _dequantize(blocks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """MXFP4 -> float32, written from the format's definition (not from transformers)."""
    lut = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    values = torch.stack([lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]], dim=-1)  # low nibble first
    values = values.flatten(-2) * torch.exp2(scales.float() - 127).unsqueeze(-1)
    return values.flatten(-2)


def test_transformers_loads_the_tiny_hf_checkpoint(hf_dir: Path) -> None:
    # Without triton and the `kernels` hub, transformers dequantizes MXFP4 on the CPU.
    config = transformers.Mxfp4Config(dequantize=True)
    model, info = transformers.GptOssForCausalLM.from_pretrained(
        hf_dir, quantization_config=config, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours = open_checkpoint(hf_dir).state_dict()
    params = model.state_dict()
    for spec in canonical_specs(TINY):
        if spec.dtype == torch.bfloat16:  # every plain tensor, through our name mapping
            expected = split(TINY, spec, ours[spec.name])
            for part, tensor in expected:
                assert torch.equal(params[part.name], tensor.float()), part.name
    layer = model.model.layers[1]
    # transformers keeps experts as [E, H, 2I] (gate/up still interleaved) and [E, I, H]
    mlp1 = _dequantize(ours["block.1.mlp.mlp1_weight.blocks"], ours["block.1.mlp.mlp1_weight.scales"])
    mlp2 = _dequantize(ours["block.1.mlp.mlp2_weight.blocks"], ours["block.1.mlp.mlp2_weight.scales"])
    assert torch.equal(layer.mlp.experts.gate_up_proj, mlp1.transpose(1, 2))
    assert torch.equal(layer.mlp.experts.down_proj, mlp2.transpose(1, 2))
    logits = model(torch.tensor([[1, 200006, 5000, 200008, 42] * 4])).logits
    assert logits.shape == (1, 20, TINY.vocab_size)
    assert torch.isfinite(logits).all() and 0.1 < logits.std().item() < 10


def test_tokenizer_json_matches_harmony(hf_dir: Path, encoding: HarmonyEncoding) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    text = "Hello  world!\n\n\tdef f(x): return x**2  # 12345 ñandú 日本語 🙂 don't"
    assert tokenizer.encode(text, add_special_tokens=False) == encoding.encode(text, allowed_special="all")
    marked = "<|start|>assistant<|channel|>final<|message|>hi<|end|>"
    assert tokenizer.encode(marked, add_special_tokens=False) == encoding.encode(
        marked, allowed_special="all"
    )
