"""`codexpc codex-config` writes the model catalog and points the profile at it."""

from __future__ import annotations

import json
from pathlib import Path

import tomlkit

from codexpc import codex_config
from codexpc.codex_catalog import CONTEXT_WINDOW


def test_the_catalog_describes_gpt_oss_as_a_model_codex_knows(tmp_path: Path) -> None:
    target = codex_config.CodexTarget("http://127.0.0.1:8787/v1", catalog_names=("gpt-oss-20b", "gpt-oss:20b"))
    result = codex_config.apply(target, tmp_path)
    catalog_file = tmp_path / codex_config.CATALOG_FILE
    assert catalog_file in result.changed
    models = json.loads(catalog_file.read_text())["models"]
    assert [m["slug"] for m in models] == ["gpt-oss-20b", "gpt-oss:20b"]
    model = models[0]
    assert model["context_window"] == CONTEXT_WINDOW and model["auto_compact_token_limit"] < CONTEXT_WINDOW
    assert model["apply_patch_tool_type"] == "freeform" and model["input_modalities"] == ["text"]
    assert [level["effort"] for level in model["supported_reasoning_levels"]] == ["low", "medium", "high"]
    assert model["default_reasoning_level"] == "medium" and model["supports_reasoning_summaries"] is True
    profile = tomlkit.parse(codex_config.profile_path(tmp_path).read_text())
    assert profile["model_catalog_json"] == str(catalog_file)
    assert profile["model_reasoning_summary"] == codex_config.REASONING_SUMMARY
    assert codex_config.apply(target, tmp_path).changed == ()  # converges
    assert catalog_file in codex_config.remove(tmp_path) and not catalog_file.exists()
