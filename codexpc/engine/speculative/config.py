"""The engine's speculative-decoding settings: one frozen dataclass, checked once when built."""

from __future__ import annotations

from dataclasses import dataclass

# Harmony channels a coding agent copies in: tool calls (commentary) and the final answer.
COPYING_CHANNELS: tuple[str, ...] = ("commentary", "final")


@dataclass(frozen=True)
class SpeculativeConfig:
    enabled: bool = False  # off until measured on a GPU (bench/speculative.py)
    k: int = 4  # most tokens drafted for one sequence in one step
    min_match: int = 3  # shortest suffix of the sequence that must recur for a draft
    max_match: int = 32  # a longer match is not looked for (bounds a step's work)
    max_candidates: int = 8  # earlier occurrences compared per step, most recent first
    # Draft only in these Harmony channels (None: everywhere). The engine tracks the channel from
    # the sampled tokens (policy.ChannelTracker); COPYING_CHANNELS leaves out the analysis channel.
    channels: tuple[str, ...] | None = None
    max_batch: int = 8  # more running sequences than this: no drafting (verify no longer pays)
    fail_limit: int = 3  # this many verify steps in a row that accept nothing: a cooldown
    cooldown_steps: int = 16  # the first cooldown, in decode steps; doubled each time, up to
    max_cooldown_steps: int = 256

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("speculative k must be >= 1")
        if self.min_match < 1:
            raise ValueError("speculative min_match must be >= 1")
        if self.max_match < self.min_match:
            raise ValueError("speculative max_match must be >= min_match")
        if self.max_candidates < 1 or self.max_batch < 1 or self.fail_limit < 1:
            raise ValueError("speculative max_candidates, max_batch and fail_limit must be >= 1")
        if not 0 < self.cooldown_steps <= self.max_cooldown_steps:
            raise ValueError("speculative cooldown_steps must be in (0, max_cooldown_steps]")
