"""The model catalog codexpc writes for Codex (`model_catalog_json`): gpt-oss as a model Codex knows.

For a name it does not know (every `gpt-oss*`), Codex warns "Model metadata ... not found", assumes
a 272k window, declares no apply_patch tool and asks for no reasoning summary. A catalog entry
fixes each of those: the real window (131,072) and an auto-compact limit below it, the freeform
apply_patch (the only kind Codex 0.140-0.171 accept in a catalog), gpt-oss's three reasoning
levels, text-only input (Codex then drops images itself), summaries on (codexpc streams the
reasoning as a titled summary, which the TUI shows).

The entry holds every key each version's own bundled catalog has (checked per version in
tests/test_codex_matrix.py): 0.140 reads `base_instructions` and `reasoning_summary_format`,
0.155+ read `model_messages` and a few more flags. Keys a version does not know it ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONTEXT_WINDOW = 131_072  # gpt-oss-20b and -120b
# Compact at 90% of the window: room left for the summary request's own output.
AUTO_COMPACT_FRACTION = 0.9
REASONING_LEVELS = (
    ("low", "Fast answers, little reasoning (gpt-oss Reasoning: low)"),
    ("medium", "Balanced reasoning for everyday tasks (gpt-oss Reasoning: medium)"),
    ("high", "Deepest reasoning gpt-oss has (Reasoning: high)"),
)
DEFAULT_EFFORT = "medium"  # gpt-oss's own default
# Codex's base instructions for a model without its own: it uses its default prompt when
# `base_instructions` is empty (0.140) and when `model_messages` is null (0.155+).
BASE_INSTRUCTIONS = ""


@dataclass(frozen=True)
class CatalogModel:
    slug: str  # the name Codex sends as `model`
    context_window: int = CONTEXT_WINDOW
    display_name: str | None = None


def entry(model: CatalogModel) -> dict[str, Any]:
    window = model.context_window
    return {
        "slug": model.slug,
        "display_name": model.display_name or model.slug,
        "description": "gpt-oss served on this machine by codexpc",
        "default_reasoning_level": DEFAULT_EFFORT,
        "supported_reasoning_levels": [{"effort": e, "description": d} for e, d in REASONING_LEVELS],
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": 1,
        "upgrade": None,
        "availability_nux": None,
        "minimal_client_version": "0.1.0",
        "available_in_plans": [],
        "base_instructions": BASE_INSTRUCTIONS,  # 0.140
        "reasoning_summary_format": "none",  # 0.140
        "model_messages": None,  # 0.155+: Codex's default prompt
        "supports_reasoning_summaries": True,
        "supports_reasoning_summary_parameter": True,
        "default_reasoning_summary": "auto",
        "support_verbosity": False,
        "default_verbosity": None,
        "apply_patch_tool_type": "freeform",
        "web_search_tool_type": "text",
        "supports_search_tool": False,
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_parallel_tool_calls": False,  # gpt-oss makes one call per message
        "context_window": window,
        "max_context_window": window,
        "auto_compact_token_limit": int(window * AUTO_COMPACT_FRACTION),
        "experimental_supported_tools": [],
        "input_modalities": ["text"],
        "prefer_websockets": False,
        "supports_image_detail_original": False,
        "service_tiers": [],
        "additional_speed_tiers": [],
        "default_service_tier": None,
        "comp_hash": None,
        "tool_mode": None,
        "multi_agent_version": None,
        "model_specialty": None,
        "auto_review_model_override": None,
        "use_responses_lite": False,
        "include_skills_usage_instructions": True,
        "include_apps_usage_instructions": False,
        "include_plugin_usage_instructions": False,
        "node_repl_auto_review_required": False,
        "node_repl_disabled": True,
    }


def catalog(models: list[CatalogModel]) -> dict[str, Any]:
    """The `model_catalog_json` document: one entry per name Codex may ask for."""
    return {"models": [entry(m) for m in models]}
