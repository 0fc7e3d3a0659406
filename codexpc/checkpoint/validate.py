"""Checks shared by every layout: a config that can describe a gpt-oss model, tensors as it implies.

Every problem raises CheckpointError naming the file, before any GPU memory is taken.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codexpc.checkpoint.safetensors_io import Entry, check_entry
from codexpc.checkpoint.tensors import MXFP4_BLOCK, TensorSpec
from codexpc.engine.model_config import ModelConfig
from codexpc.errors import CheckpointError

MAX_JSON_BYTES = 64 * 2**20  # config.json, dtypes.json, index.json: small files; bound what we parse
MIN_VOCAB = 200014  # the 199998 ordinary o200k tokens and the Harmony specials up to <|refusal|>

# Bounds on what a file can make us allocate: far above any gpt-oss, far below absurd.
_LIMITS = {
    "num_hidden_layers": 512,
    "num_experts": 4096,
    "vocab_size": 1 << 20,
    "hidden_size": 1 << 16,
    "intermediate_size": 1 << 16,
    "head_dim": 1024,
    "num_attention_heads": 1024,
    "num_key_value_heads": 1024,
    "sliding_window": 1 << 20,
    "initial_context_length": 1 << 24,
    "context_length": 1 << 24,
}


def fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


def read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise fail(path, f"{size} bytes is too large for a JSON metadata file")
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail(path, "missing file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(path, f"not valid JSON ({exc})") from None
    except RecursionError:  # json's parser recurses per nesting level; a hostile file nests deep
        raise fail(path, "JSON nested too deeply") from None
    except OSError as exc:
        raise fail(path, f"unreadable: {exc.strerror or exc}") from None


def json_object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise fail(path, "expected a JSON object")
    return data


def number(path: Path, data: Mapping[str, Any], key: str, default: Any = None, kind: type = int) -> Any:
    """One field of a config, of the right type; missing fields take `default` or are refused."""
    value = data.get(key, default)
    if value is None:
        raise fail(path, f"config has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(path, f"config {key!r} = {value!r} is not a number")
    if kind is int:
        if float(value) != int(value):
            raise fail(path, f"config {key!r} = {value!r} is not an integer")
        return int(value)
    return float(value)


def build_config(path: Path, fields: Mapping[str, Any]) -> ModelConfig:
    """A ModelConfig from parsed fields, refusing any inconsistency instead of asserting."""
    for key, limit in _LIMITS.items():
        value = fields[key]
        if not 0 < value <= limit:
            raise fail(path, f"config {key} = {value} is out of range (1..{limit})")
    if fields["num_attention_heads"] % fields["num_key_value_heads"]:
        raise fail(path, "num_attention_heads is not a multiple of num_key_value_heads")
    if not 0 < fields["experts_per_token"] <= fields["num_experts"]:
        raise fail(
            path,
            f"experts_per_token = {fields['experts_per_token']} does not fit {fields['num_experts']} experts",
        )
    for key in ("hidden_size", "intermediate_size"):
        if fields[key] % MXFP4_BLOCK:
            raise fail(path, f"{key} = {fields[key]} is not a multiple of the MXFP4 block ({MXFP4_BLOCK})")
    if fields["head_dim"] % 2:
        raise fail(path, f"head_dim = {fields['head_dim']} is odd (RoPE rotates pairs)")
    if fields["vocab_size"] < MIN_VOCAB:
        raise fail(
            path,
            f"vocab_size = {fields['vocab_size']} cannot hold the o200k Harmony vocabulary ({MIN_VOCAB})",
        )
    if fields["rope_scaling_factor"] < 1.0 or fields["rope_theta"] <= 1.0:
        raise fail(path, "rope_scaling_factor must be >= 1 and rope_theta > 1")
    if not 0 < fields["rms_norm_eps"] < 1:
        raise fail(path, f"rms_norm_eps = {fields['rms_norm_eps']} is out of range")
    return ModelConfig(**fields)


def check_tensors(
    where: Path, specs: list[TensorSpec], found: Mapping[str, Entry], names: Mapping[str, str] | None = None
) -> list[Entry]:
    """Match the expected tensors to a layout's entries (by on-disk name); refuse missing or mis-shaped ones."""
    entries = []
    for spec in specs:
        disk_name = names[spec.name] if names is not None else spec.name
        entry = found.get(disk_name)
        if entry is None:
            raise fail(where, f"missing tensor {disk_name!r}")
        check_entry(entry, spec)
        entries.append(entry)
    return entries
