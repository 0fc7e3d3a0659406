"""The Hugging Face layout: config.json, sharded model-*.safetensors with an index, tokenizer.json.

Tensor names follow transformers' GptOssForCausalLM with its MXFP4 integration. The expert
tensors are byte-for-byte the canonical ones: `gate_up_proj_blocks` [E, 2I, H/32, 16] is
`mlp1_weight.blocks` (same orientation, gate/up interleaved the same way); transformers
transposes only after dequantizing. The one real difference is attention: the fused `qkv`
becomes `q_proj`, `k_proj`, `v_proj` (rows split, no permutation: both use half-split RoPE).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from codexpc.checkpoint import hf_config, validate
from codexpc.checkpoint.base import Checkpoint, TensorSource
from codexpc.checkpoint.original import sources_for
from codexpc.checkpoint.safetensors_io import Entry, MapCache, read_header, write_safetensors
from codexpc.checkpoint.tensors import TensorSpec, canonical_specs
from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
MAX_SHARD_BYTES = 4_800_000_000  # as the published gpt-oss repositories are sharded

_RENAMES = {  # canonical suffix -> transformers suffix, within a block
    "attn.norm.scale": "input_layernorm.weight",
    "attn.sinks": "self_attn.sinks",
    "attn.out.weight": "self_attn.o_proj.weight",
    "attn.out.bias": "self_attn.o_proj.bias",
    "mlp.norm.scale": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.router.weight",
    "mlp.gate.bias": "mlp.router.bias",
    "mlp.mlp1_weight.blocks": "mlp.experts.gate_up_proj_blocks",
    "mlp.mlp1_weight.scales": "mlp.experts.gate_up_proj_scales",
    "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
    "mlp.mlp2_weight.blocks": "mlp.experts.down_proj_blocks",
    "mlp.mlp2_weight.scales": "mlp.experts.down_proj_scales",
    "mlp.mlp2_bias": "mlp.experts.down_proj_bias",
}
_TOP = {
    "embedding.weight": "model.embed_tokens.weight",
    "norm.scale": "model.norm.weight",
    "unembedding.weight": "lm_head.weight",
}


def hf_parts(config: ModelConfig, spec: TensorSpec) -> list[TensorSpec]:
    """The transformers tensors that make up one canonical tensor (concatenated along dim 0)."""
    if spec.name in _TOP:
        return [TensorSpec(_TOP[spec.name], spec.shape, spec.dtype)]
    _, layer, rest = spec.name.split(".", 2)
    prefix = f"model.layers.{layer}"
    if rest in ("attn.qkv.weight", "attn.qkv.bias"):
        kind = rest.rsplit(".", 1)[1]
        q = config.num_attention_heads * config.head_dim
        kv = config.num_key_value_heads * config.head_dim
        return [
            TensorSpec(f"{prefix}.self_attn.{p}_proj.{kind}", (rows, *spec.shape[1:]), spec.dtype)
            for p, rows in (("q", q), ("k", kv), ("v", kv))
        ]
    return [TensorSpec(f"{prefix}.{_RENAMES[rest]}", spec.shape, spec.dtype)]


def split(
    config: ModelConfig, spec: TensorSpec, tensor: torch.Tensor
) -> list[tuple[TensorSpec, torch.Tensor]]:
    parts = hf_parts(config, spec)
    pieces = torch.split(tensor, [p.shape[0] for p in parts], dim=0)
    return [(p, piece.contiguous()) for p, piece in zip(parts, pieces, strict=True)]


# --- reading -------------------------------------------------------------------------------


def _entries(folder: Path) -> dict[str, Entry]:
    index_path = folder / INDEX
    if index_path.exists():
        index = validate.json_object(index_path)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise validate.fail(index_path, "has no weight_map")
        shards = sorted({str(f) for f in weight_map.values()})
        if any("/" in s or s.startswith(".") for s in shards):
            raise validate.fail(index_path, "names a shard outside the checkpoint folder")
    else:
        weight_map, shards = None, [p.name for p in sorted(folder.glob("model*.safetensors"))]
        if not shards:
            raise validate.fail(index_path, "missing file (and no model*.safetensors beside it)")
    found: dict[str, Entry] = {}
    for shard in shards:
        for name, entry in read_header(folder / shard).items():
            if weight_map is not None and weight_map.get(name) != shard:
                raise validate.fail(
                    folder / shard, f"holds {name!r}, which {INDEX} places in {weight_map.get(name)}"
                )
            found[name] = entry
    return found


def _source(name: str, entries: list[Entry], maps: MapCache) -> TensorSource:
    reads = sources_for(entries, [e.name for e in entries], maps)
    if len(reads) == 1:
        return replace(reads[0], name=name)

    def read() -> torch.Tensor:
        return torch.cat([r.read() for r in reads], dim=0)  # q, k, v rows back into one qkv

    return TensorSource(name, entries[0].file, sum(e.nbytes for e in entries), read)


def open_hf(folder: Path) -> Checkpoint:
    config = hf_config.parse_config(folder / CONFIG)
    found = _entries(folder)
    sources: list[TensorSource] = []
    files: set[Path] = set()
    expected: set[str] = set()
    maps = MapCache()
    for spec in canonical_specs(config):
        parts = hf_parts(config, spec)
        entries = validate.check_tensors(folder, parts, found)
        expected.update(p.name for p in parts)
        files.update(e.file for e in entries)
        sources.append(_source(spec.name, entries, maps))
    extra = set(found) - expected
    if extra:
        log.warning("%s: ignoring %d unexpected tensors, e.g. %s", folder, len(extra), sorted(extra)[0])
    return Checkpoint(folder, "hf", config, tuple(sorted(files)), tuple(sources))


# --- writing -------------------------------------------------------------------------------


def plan_shards(specs: list[TensorSpec], max_bytes: int) -> list[list[TensorSpec]]:
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def shard_name(i: int, n: int) -> str:
    # The published gpt-oss repositories count from zero: model-00000-of-00002 is the first of three.
    return f"model-{i:05d}-of-{n - 1:05d}.safetensors"


def write_hf(
    config: ModelConfig,
    tensors: Iterable[tuple[TensorSpec, torch.Tensor]],
    out: Path,
    max_shard_bytes: int | None = None,
) -> Path:
    """Write canonical tensors (canonical order) as transformers' layout, streaming shard by shard."""
    out.mkdir(parents=True, exist_ok=True)
    hf_specs = [p for spec in canonical_specs(config) for p in hf_parts(config, spec)]
    total = sum(s.nbytes for s in hf_specs)
    # small models still get two shards, so the index is always exercised
    limit = max_shard_bytes or min(MAX_SHARD_BYTES, max(1, total // 2))
    shards = plan_shards(hf_specs, limit)
    (out / CONFIG).write_text(json.dumps(hf_config.config_json(config), indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps(hf_config.generation_config_json(), indent=2) + "\n"
    )
    weight_map = {s.name: shard_name(i, len(shards)) for i, shard in enumerate(shards) for s in shard}
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    stream: Iterator[tuple[TensorSpec, torch.Tensor]] = (
        part for spec, tensor in tensors for part in split(config, spec, tensor)
    )
    for i, shard in enumerate(shards):
        chunk = ((p.name, t) for p, t in _take(stream, len(shard)))
        write_safetensors(out / shard_name(i, len(shards)), shard, chunk)
    return out


def _take(
    stream: Iterator[tuple[TensorSpec, torch.Tensor]], n: int
) -> Iterator[tuple[TensorSpec, torch.Tensor]]:
    for _ in range(n):
        yield next(stream)
