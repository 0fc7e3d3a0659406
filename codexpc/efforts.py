"""Reasoning efforts: the one table of the names clients send and gpt-oss's level for each.

gpt-oss knows three levels (its system message says `Reasoning: low|medium|high`). The OpenAI
API and Codex name more (Codex 0.140-0.171 send any of these from `model_reasoning_effort`);
each maps to the nearest of the three. Parsing, rendering, the OpenAPI description, the config
and the CLI all read this table, so a name accepted in one place is accepted everywhere.
"""

from __future__ import annotations

from typing import Literal

from codexpc.errors import RequestError

Level = Literal["low", "medium", "high"]  # what gpt-oss itself knows
LEVELS: tuple[Level, ...] = ("low", "medium", "high")

# Every effort name a client may send, in the API's order, and the gpt-oss level it means.
EFFORTS: dict[str, Level] = {
    "none": "low",  # gpt-oss cannot skip its analysis; the least it does is "low"
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
EFFORT_NAMES: tuple[str, ...] = tuple(EFFORTS)


def level_of(effort: object, param: str = "reasoning.effort") -> Level:
    """gpt-oss's level for an effort name; a RequestError naming `param` for anything else."""
    level = EFFORTS.get(effort) if isinstance(effort, str) else None
    if level is None:
        raise RequestError(f"{param} must be one of {', '.join(EFFORT_NAMES)}", param=param)
    return level
