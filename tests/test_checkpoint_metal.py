"""Metal's model.bin: round trip against the original layout, its tokenizer, its refusals."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codexpc import vocab
from codexpc.checkpoint import detect_layout, open_checkpoint, write_checkpoint
from codexpc.checkpoint import metal_format as fmt
from codexpc.checkpoint.metal import (
    _config,
    _model_header,
    from_metal_qkv,
    metal_config,
    read_vocab_ranks,
    to_metal_qkv,
)
from codexpc.engine.model_config import GPT_OSS_20B, GPT_OSS_120B, TINY, ModelConfig
from codexpc.errors import CheckpointError


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("metal")
    return {
        "metal": write_checkpoint(TINY, "metal", root / "metal", seed=11),
        "original": write_checkpoint(TINY, "original", root / "original", seed=11),
    }


def test_metal_round_trip_equals_original_within_its_vocabulary(written: dict[str, Path]) -> None:
    metal = open_checkpoint(written["metal"])
    assert metal.layout == "metal"
    assert metal.config == metal_config(TINY)  # everything but the vocabulary survives the header
    original = open_checkpoint(written["original"]).state_dict()
    rows = metal.config.vocab_size
    for name, tensor in metal.iter_tensors():
        expected = (
            original[name][:rows] if name in ("embedding.weight", "unembedding.weight") else original[name]
        )
        assert torch.equal(tensor, expected), name
        assert tensor.is_contiguous(), name


def test_folder_holding_model_bin_is_detected_as_metal(written: dict[str, Path]) -> None:
    assert written["metal"].name == "model.bin"
    assert detect_layout(written["metal"]) == "metal"
    assert detect_layout(written["metal"].parent) == "metal"


def test_vocab_ranks_rebuild_the_genuine_o200k_file(written: dict[str, Path]) -> None:
    tokens = read_vocab_ranks(written["metal"])
    assert len(tokens) == vocab.N_RANKS
    assert hashlib.sha256(vocab.tiktoken_bytes(tokens)).hexdigest() == vocab.SHA256


def test_qkv_permutation_and_folded_scale_invert_exactly() -> None:
    config = replace(TINY, head_dim=64)
    rows = config.head_dim * (config.num_attention_heads + 2 * config.num_key_value_heads)
    weight = torch.randn(rows, 32).to(torch.bfloat16)
    metal = to_metal_qkv(config, weight)
    # head 0 of q: row 2j of Metal is row j of the half-split layout, times 0.5
    assert torch.equal(metal[2], weight[1] * 0.5)
    assert torch.equal(metal[3], weight[1 + 32] * 0.5)
    assert torch.equal(from_metal_qkv(config, metal), weight)
    bias = torch.randn(rows).to(torch.bfloat16)
    assert torch.equal(from_metal_qkv(config, to_metal_qkv(config, bias)), bias)


def test_bad_magic_is_refused(tmp_path: Path, written: dict[str, Path]) -> None:
    broken = tmp_path / "model.bin"
    data = bytearray(written["metal"].read_bytes())
    data[0:3] = b"XYZ"
    broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.bin: bad magic"):
        open_checkpoint(broken)


def test_truncated_weights_are_refused(tmp_path: Path, written: dict[str, Path]) -> None:
    broken = tmp_path / "model.bin"
    broken.write_bytes(written["metal"].read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.bin: truncated: weights end at byte"):
        open_checkpoint(broken)


def test_truncated_tokenizer_is_refused(tmp_path: Path, written: dict[str, Path]) -> None:
    broken = tmp_path / "model.bin"
    broken.write_bytes(written["metal"].read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated: the tokenizer ends"):
        open_checkpoint(broken)


def test_head_dim_that_cannot_fold_the_scale_exactly_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="power of 4"):
        write_checkpoint(replace(TINY, head_dim=32), "metal", tmp_path)


@pytest.mark.parametrize("config", [GPT_OSS_20B, GPT_OSS_120B, TINY])
def test_model_header_keeps_the_config(config: ModelConfig) -> None:
    header = fmt.ModelHeader._make(fmt.MODEL_HEADER.unpack(_model_header(config)))
    assert _config(Path("model.bin"), header, metal_config(config).vocab_size) == metal_config(config)


def test_impossible_header_fields_are_refused(tmp_path: Path, written: dict[str, Path]) -> None:
    broken = tmp_path / "model.bin"
    data = bytearray(written["metal"].read_bytes())
    at = 32 + fmt.MODEL_HEADER.size - 12  # yarn_scale: the third float from the end
    data[at : at + 4] = struct.pack("<f", 0.0)
    broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="impossible RoPE fields"):
        open_checkpoint(broken)
