"""Broken checkpoints are refused before any tensor is read, naming the file and the problem."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from codexpc.checkpoint import detect_layout, open_checkpoint, write_checkpoint
from codexpc.checkpoint.safetensors_io import MAX_HEADER_BYTES
from codexpc.engine.model_config import TINY
from codexpc.errors import CheckpointError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pristine")
    return {layout: write_checkpoint(TINY, layout, root / layout) for layout in ("original", "hf")}


@pytest.fixture
def copy(tmp_path: Path, pristine: dict[str, Path]) -> Callable[[str], Path]:
    def make(layout: str) -> Path:
        return Path(shutil.copytree(pristine[layout], tmp_path / layout))

    return make


def _rewrite_header(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as info:
        open_checkpoint(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_weights_file(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    (folder / "model.safetensors").unlink()
    (folder / "dtypes.json").write_text("{}")  # still recognisably `original/`
    _refused(folder, "model.safetensors", "missing file")


def test_missing_shard_named_by_the_index(copy: Callable[[str], Path]) -> None:
    folder = copy("hf")
    (folder / "model-00001-of-00002.safetensors").unlink()
    _refused(folder, "model-00001-of-00002.safetensors", "missing file")


def test_truncated_tensor(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    _refused(folder, "model.safetensors", "truncated: tensor 'unembedding.weight' ends at byte")


def test_wrong_shape(copy: Callable[[str], Path]) -> None:
    folder = copy("original")

    def edit(header: dict[str, Any]) -> None:
        entry = header["block.1.attn.sinks"]
        entry["shape"] = [2, 2]  # same bytes, other shape

    _rewrite_header(folder / "model.safetensors", edit)
    _refused(folder, "model.safetensors", "'block.1.attn.sinks' has shape [2, 2], expected [4]")


def test_wrong_dtype(copy: Callable[[str], Path]) -> None:
    folder = copy("hf")
    shard = folder / "model-00000-of-00002.safetensors"

    def edit(header: dict[str, Any]) -> None:
        entry = header["model.embed_tokens.weight"]
        entry["dtype"] = "F16"  # same size, wrong type

    _rewrite_header(shard, edit)
    _refused(folder, shard.name, "'model.embed_tokens.weight' has dtype F16, expected BF16")


def test_offsets_that_do_not_match_the_shape(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    _rewrite_header(folder / "model.safetensors", lambda h: h["norm.scale"].update(data_offsets=[0, 2]))
    _refused(folder, "model.safetensors", "'norm.scale': data_offsets [0, 2] do not hold BF16 [64]")


def test_oversized_header(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    weights = folder / "model.safetensors"
    weights.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + weights.read_bytes()[8:])
    _refused(folder, "model.safetensors", "exceeds the")


def test_header_that_is_not_json(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:12] = b"nope"
    weights.write_bytes(bytes(data))
    _refused(folder, "model.safetensors", "header is not valid JSON")


def test_missing_tensor(copy: Callable[[str], Path]) -> None:
    folder = copy("hf")
    shard = folder / "model-00000-of-00002.safetensors"
    _rewrite_header(shard, lambda h: h.pop("model.layers.0.self_attn.sinks"))
    _refused(folder, "missing tensor 'model.layers.0.self_attn.sinks'")


def test_shard_holding_a_tensor_the_index_places_elsewhere(copy: Callable[[str], Path]) -> None:
    folder = copy("hf")
    _edit_json(
        folder / "model.safetensors.index.json",
        lambda d: d["weight_map"].update({"model.norm.weight": "model-00000-of-00002.safetensors"}),
    )
    _refused(folder, "holds 'model.norm.weight'")


def test_dtypes_json_that_disagrees(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    _edit_json(folder / "dtypes.json", lambda d: d.update({"block.0.mlp.mlp1_weight.blocks": "BF16"}))
    _refused(folder, "dtypes.json", "block.0.mlp.mlp1_weight.blocks")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("num_key_value_heads", 3, "num_attention_heads is not a multiple of num_key_value_heads"),
        ("experts_per_token", 9, "does not fit 4 experts"),
        ("hidden_size", 48, "not a multiple of the MXFP4 block"),
        ("num_hidden_layers", 0, "out of range"),
        ("vocab_size", 1000, "cannot hold the o200k"),
        ("head_dim", "sixteen", "is not a number"),
    ],
)
def test_inconsistent_original_config(
    copy: Callable[[str], Path], key: str, value: Any, problem: str
) -> None:
    folder = copy("original")
    _edit_json(folder / "config.json", lambda d: d.update({key: value}))
    _refused(folder, "config.json", problem)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.update(num_experts_per_tok=3), "num_experts_per_tok = 3 but experts_per_token = 2"),
        (lambda d: d.update(layer_types=["full_attention"] * 4), "layer_types do not alternate"),
        (lambda d: d.pop("quantization_config"), "only MXFP4 experts"),
        (lambda d: d["rope_scaling"].update(rope_type="linear"), "is not 'yarn'"),
        (lambda d: d.update(swiglu_alpha=1.5), "swiglu_alpha"),
        (lambda d: d.update(model_type="llama"), "model_type 'llama'"),
        (lambda d: d.update(hidden_size=128), "has shape"),  # config and tensors disagree
    ],
)
def test_inconsistent_hf_config(
    copy: Callable[[str], Path], edit: Callable[[dict[str, Any]], None], problem: str
) -> None:
    folder = copy("hf")
    _edit_json(folder / "config.json", edit)
    _refused(folder, problem)


def test_config_that_is_not_json(copy: Callable[[str], Path]) -> None:
    folder = copy("original")
    (folder / "config.json").write_text("{not json")
    _refused(folder, "config.json", "not valid JSON")


def test_hf_config_in_transformers_5_form_is_read(copy: Callable[[str], Path]) -> None:
    folder = copy("hf")

    def modern(d: dict[str, Any]) -> None:
        d["rope_parameters"] = {**d.pop("rope_scaling"), "rope_theta": d.pop("rope_theta")}
        d["num_experts"] = d.pop("num_local_experts")

    _edit_json(folder / "config.json", modern)
    assert open_checkpoint(folder).config == TINY


def test_nothing_recognisable(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="no gpt-oss checkpoint found"):
        detect_layout(tmp_path)
    with pytest.raises(CheckpointError, match="missing file or folder"):
        open_checkpoint(tmp_path / "absent")


def test_overlapping_tensors(copy: Callable[[str], Path]) -> None:
    folder = copy("original")

    def edit(header: dict[str, Any]) -> None:
        header["norm.scale"]["data_offsets"] = header["block.0.attn.norm.scale"]["data_offsets"]

    _rewrite_header(folder / "model.safetensors", edit)
    _refused(folder, "model.safetensors", "overlap")
