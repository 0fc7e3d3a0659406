"""Requests to Harmony prompt tokens: Responses API and Chat Completions bodies.

openai-harmony does the rendering itself; this module only maps request items onto its
Conversation, and refuses what a local text model cannot take.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from openai_harmony import HarmonyEncoding

from codexpc.harmony.tools import ToolRegistry

Effort = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class RenderOptions:
    default_effort: Effort = "medium"
    knowledge_cutoff: str = "2024-06"
    current_date: str | None = None  # "YYYY-MM-DD"; None means today (UTC)

    def date(self) -> str:
        return self.current_date or datetime.datetime.now(datetime.UTC).date().isoformat()


@dataclass(frozen=True)
class RenderedPrompt:
    tokens: list[int]
    registry: ToolRegistry
    user_parts: int  # user content parts rendered
    messages: int  # Harmony messages rendered (system and developer included)
    dropped_reasoning: int  # reasoning items left out (before the last final answer)
    skipped_tools: list[str] = field(default_factory=list)  # tool types a local model cannot serve


def render_responses(body: Mapping[str, Any], encoding: HarmonyEncoding, options: RenderOptions) -> RenderedPrompt:
    """Prompt tokens for a Responses API body. Raises RequestError / UnsupportedContentError."""
    raise NotImplementedError


def render_chat(body: Mapping[str, Any], encoding: HarmonyEncoding, options: RenderOptions) -> RenderedPrompt:
    """Prompt tokens for a Chat Completions body. Raises RequestError / UnsupportedContentError."""
    raise NotImplementedError
