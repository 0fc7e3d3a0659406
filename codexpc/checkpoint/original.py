"""The `original/` layout: config.json, dtypes.json and model.safetensors in canonical names.

This is the layout of openai/gpt-oss's own reference code; its config.json is that code's
ModelConfig as JSON (no context length: the reference derives it as initial context x factor).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from codexpc.checkpoint import validate
from codexpc.checkpoint.base import Checkpoint, TensorSource
from codexpc.checkpoint.safetensors_io import Entry, MapCache, read_header, write_safetensors
from codexpc.checkpoint.tensors import TensorSpec, canonical_specs
from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

CONFIG = "config.json"
DTYPES = "dtypes.json"
WEIGHTS = "model.safetensors"
# dtypes.json names the logical type; on disk both FP4 blocks and UE8 scales are U8
_LOGICAL = {"BF16": "BF16", "F32": "F32", "FP4": "U8", "UE8": "U8"}
_INT_KEYS = (
    "num_hidden_layers", "num_experts", "experts_per_token", "vocab_size", "hidden_size",
    "intermediate_size", "head_dim", "num_attention_heads", "num_key_value_heads",
    "sliding_window", "initial_context_length",
)  # fmt: skip
_FLOAT_KEYS = ("swiglu_limit", "rope_theta", "rope_scaling_factor", "rope_ntk_alpha", "rope_ntk_beta")


def parse_config(path: Path) -> ModelConfig:
    data = validate.json_object(path)
    fields: dict[str, Any] = {k: validate.number(path, data, k) for k in _INT_KEYS}
    fields |= {k: validate.number(path, data, k, kind=float) for k in _FLOAT_KEYS}
    fields["rms_norm_eps"] = validate.number(path, data, "rms_norm_eps", 1e-5, kind=float)
    derived = round(fields["initial_context_length"] * fields["rope_scaling_factor"])
    fields["context_length"] = validate.number(path, data, "context_length", derived)
    return validate.build_config(path, fields)


def config_json(config: ModelConfig) -> dict[str, Any]:
    """The reference's keys; context_length and rms_norm_eps only where they differ from its defaults."""
    data: dict[str, Any] = {k: getattr(config, k) for k in (*_INT_KEYS[:6], "swiglu_limit", *_INT_KEYS[6:])}
    data |= {k: getattr(config, k) for k in _FLOAT_KEYS if k != "swiglu_limit"}
    if config.context_length != round(config.initial_context_length * config.rope_scaling_factor):
        data["context_length"] = config.context_length
    if config.rms_norm_eps != 1e-5:
        data["rms_norm_eps"] = config.rms_norm_eps
    return data


def dtypes_json(specs: Iterable[TensorSpec]) -> dict[str, str]:
    def logical(spec: TensorSpec) -> str:
        return "FP4" if spec.name.endswith(".blocks") else "UE8" if spec.name.endswith(".scales") else "BF16"

    return {spec.name: logical(spec) for spec in specs}


def _check_dtypes(path: Path, entries: dict[str, Entry]) -> None:
    if not path.exists():
        return  # the reference code never reads it; the safetensors header is the authority
    for name, logical in validate.json_object(path).items():
        entry = entries.get(name)
        if entry is not None and _LOGICAL.get(logical) != entry.dtype:
            raise validate.fail(
                path, f"says {name!r} is {logical} but {entry.file.name} stores {entry.dtype}"
            )


def weight_entries(folder: Path) -> dict[str, Entry]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise validate.fail(folder / WEIGHTS, "missing file")
    entries: dict[str, Entry] = {}
    for file in files:
        for name, entry in read_header(file).items():
            if name in entries:
                raise validate.fail(file, f"tensor {name!r} is also in {entries[name].file.name}")
            entries[name] = entry
    return entries


def sources_for(entries: Iterable[Entry], names: Iterable[str], maps: MapCache) -> tuple[TensorSource, ...]:
    """Read plans for safetensors entries, under canonical names."""

    def reader(entry: Entry) -> Callable[[], torch.Tensor]:
        return lambda: maps.get(entry.file).tensor(entry)

    return tuple(TensorSource(n, e.file, e.nbytes, reader(e)) for n, e in zip(names, entries, strict=True))


def open_original(folder: Path) -> Checkpoint:
    config = parse_config(folder / CONFIG)
    found = weight_entries(folder)
    _check_dtypes(folder / DTYPES, found)
    specs = canonical_specs(config)
    entries = validate.check_tensors(folder, specs, found)
    extra = set(found) - {s.name for s in specs}
    if extra:
        log.warning("%s: ignoring %d unexpected tensors, e.g. %s", folder, len(extra), sorted(extra)[0])
    files = tuple(sorted({e.file for e in entries}))
    sources = sources_for(entries, [s.name for s in specs], MapCache())
    return Checkpoint(folder, "original", config, files, sources)


def write_original(
    config: ModelConfig, tensors: Iterable[tuple[TensorSpec, torch.Tensor]], out: Path
) -> Path:
    """Write canonical tensors (in canonical order) as an `original/` folder."""
    out.mkdir(parents=True, exist_ok=True)
    specs = canonical_specs(config)
    (out / CONFIG).write_text(json.dumps(config_json(config), indent=2) + "\n")
    (out / DTYPES).write_text(json.dumps(dtypes_json(specs), indent=1) + "\n")
    write_safetensors(out / WEIGHTS, specs, ((spec.name, t) for spec, t in tensors))
    return out
