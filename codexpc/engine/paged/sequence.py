"""One request inside the paged engine: its tokens, how many have KV, and its blocks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codexpc.engine.api import FinishReason, SamplingParams
from codexpc.engine.speculative.policy import DraftState

if TYPE_CHECKING:
    from codexpc.constrain.matcher import SequenceMatcher


class SeqStatus(enum.Enum):
    WAITING = "waiting"  # not yet admitted, or preempted (its KV was dropped)
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """A request's mutable state, owned by the scheduler's thread.

    vLLM v1's idea: there is no prefill or decode phase. `num_computed_tokens` (tokens whose
    KV is in the cache) catches up with `num_tokens`; prefill, chunked prefill, prefix hits,
    recompute after preemption and decoding are all this one counter moving.
    """

    request_id: str
    token_ids: list[int]  # prompt, then every sampled token
    num_prompt_tokens: int
    params: SamplingParams
    arrival: int = 0  # admission order; FCFS tie-breaker
    status: SeqStatus = SeqStatus.WAITING
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache (first admission)
    block_table: list[int] = field(default_factory=list)
    # Chained hashes of this sequence's full blocks, in order; filled lazily as blocks fill.
    block_hashes: list[int] = field(default_factory=list)
    num_registered_blocks: int = 0  # leading blocks of block_table already offered to the cache
    finish_reason: FinishReason | None = None
    num_preemptions: int = 0
    matcher: SequenceMatcher | None = None  # params.constraint's state (constrained decoding)
    draft_state: DraftState | None = None  # speculative decoding's per-sequence state, when it is on

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def last_token(self) -> int:
        return self.token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status is SeqStatus.FINISHED
