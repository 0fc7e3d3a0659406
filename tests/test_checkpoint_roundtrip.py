"""Write tiny random checkpoints in each layout, read them back: the same canonical tensors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from codexpc import vocab
from codexpc.checkpoint import convert_checkpoint, detect_layout, open_checkpoint, write_checkpoint
from codexpc.checkpoint.tensors import canonical_specs
from codexpc.engine.model_config import TINY


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {layout: write_checkpoint(TINY, layout, root / layout, seed=7) for layout in ("original", "hf")}


def test_original_round_trip_gives_canonical_names_shapes_and_dtypes(written: dict[str, Path]) -> None:
    checkpoint = open_checkpoint(written["original"])
    assert checkpoint.layout == "original"
    assert checkpoint.config == TINY
    tensors = checkpoint.state_dict()
    specs = canonical_specs(TINY)
    assert list(tensors) == [s.name for s in specs]
    for spec in specs:
        assert tuple(tensors[spec.name].shape) == spec.shape, spec.name
        assert tensors[spec.name].dtype == spec.dtype, spec.name


def test_hf_holds_the_same_tensors_as_original(written: dict[str, Path]) -> None:
    original = open_checkpoint(written["original"]).state_dict()
    hf = open_checkpoint(written["hf"])
    assert hf.layout == "hf" and hf.config == TINY
    for name, tensor in hf.iter_tensors():
        assert torch.equal(tensor, original[name]), name


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, written: dict[str, Path]) -> None:
    again = open_checkpoint(write_checkpoint(TINY, "original", tmp_path / "a", seed=7)).state_dict()
    other = open_checkpoint(write_checkpoint(TINY, "original", tmp_path / "b", seed=8)).state_dict()
    first = open_checkpoint(written["original"]).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["block.0.attn.qkv.weight"], other["block.0.attn.qkv.weight"])


def test_progress_reports_every_byte(written: dict[str, Path]) -> None:
    checkpoint = open_checkpoint(written["hf"])
    seen: list[tuple[int, int]] = []
    names = [
        name for name, _ in checkpoint.iter_tensors(progress=lambda done, total: seen.append((done, total)))
    ]
    assert len(seen) == len(names)
    assert seen[-1] == (checkpoint.nbytes, checkpoint.nbytes)
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_detect_layout(written: dict[str, Path]) -> None:
    assert detect_layout(written["original"]) == "original"
    assert detect_layout(written["hf"]) == "hf"


def test_the_safetensors_library_reads_our_files_alike(written: dict[str, Path]) -> None:
    from safetensors import safe_open

    ours = open_checkpoint(written["original"]).state_dict()
    with safe_open(str(written["original"] / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(ours)
        for name in ("embedding.weight", "block.2.mlp.mlp1_weight.blocks", "block.3.attn.sinks"):
            assert torch.equal(f.get_tensor(name), ours[name])


def test_tokenizer_json_is_an_offline_source_of_the_genuine_vocabulary(written: dict[str, Path]) -> None:
    data = vocab.from_tokenizer_json(written["hf"] / "tokenizer.json")
    assert hashlib.sha256(data).hexdigest() == vocab.SHA256


def test_unsharded_hf_folder_without_index_is_read(tmp_path: Path, written: dict[str, Path]) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "single"
    folder.mkdir()
    shutil.copy(written["hf"] / "config.json", folder / "config.json")
    merged: dict[str, torch.Tensor] = {}
    for shard in sorted(written["hf"].glob("model-*.safetensors")):
        merged |= load_file(shard)
    save_file(merged, folder / "model.safetensors")
    assert detect_layout(folder) == "hf"
    original = open_checkpoint(written["original"]).state_dict()
    assert all(torch.equal(t, original[n]) for n, t in open_checkpoint(folder).iter_tensors())


def test_a_published_style_repository_holds_all_three_layouts(tmp_path: Path) -> None:
    root = write_checkpoint(TINY, "hf", tmp_path / "repo")
    write_checkpoint(TINY, "original", root / "original")
    write_checkpoint(TINY, "metal", root / "metal")
    assert open_checkpoint(root).layout == "hf"  # the root is transformers' layout
    assert open_checkpoint(root / "original").layout == "original"
    assert open_checkpoint(root / "metal").layout == "metal"
    assert open_checkpoint(root / "metal" / "model.bin").layout == "metal"


def test_convert_between_layouts_keeps_every_tensor(tmp_path: Path, written: dict[str, Path]) -> None:
    metal = convert_checkpoint(written["hf"], "metal", tmp_path / "metal")
    back = open_checkpoint(convert_checkpoint(metal, "original", tmp_path / "original"))
    assert back.config.vocab_size == 200014  # Metal keeps the vocabulary up to the last Harmony special
    original = open_checkpoint(written["original"]).state_dict()
    for name, tensor in back.iter_tensors():
        assert torch.equal(tensor, original[name][: tensor.shape[0]]), name
