"""Per-sequence grammar state: fill a row of the token bitmask, consume the sampled token.

A Constraint is what SamplingParams carries: one compiled turn grammar, shared by every
sequence of the request (and, through compile.py's cache, by later turns with the same tools).
Each sequence gets its own SequenceMatcher, a copy of the compiled matcher (~10 us).

Masks are llguidance's bitmasks: int32 [B, ceil(V / 32)], bit t of a row set when token t is
allowed. `fill_bitmask` fills the constrained rows of a batch in parallel on llguidance's
thread pool (it releases the GIL) and leaves the others all ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import llguidance
import torch

log = logging.getLogger(__name__)

_executor: llguidance.LLExecutor | None = None
_executor_lock = threading.Lock()


class Constraint:
    """A compiled turn grammar. Its identity is its hash (SamplingParams stays hashable)."""

    def __init__(self, grammar: str, tokenizer: llguidance.LLTokenizer) -> None:
        self.grammar = grammar
        self.vocab_size = tokenizer.vocab_size
        self._template = llguidance.LLMatcher(tokenizer, grammar, log_level=0)

    @property
    def error(self) -> str | None:
        return self._template.get_error() if self._template.is_error() else None

    def start(self) -> SequenceMatcher:
        return SequenceMatcher(self._template.deep_copy())


class SequenceMatcher:
    """One sequence's place in its grammar. Owned by the engine's worker thread.

    If llguidance fails on a sequence (a resource limit, or a token that was not allowed), the
    matcher switches itself off: from then on its row allows everything and the decoder's
    validation is what is left. `failures` counts those for the engine's stats."""

    failures = 0  # across every sequence of the process

    def __init__(self, matcher: llguidance.LLMatcher) -> None:
        self._matcher = matcher
        self.active = True
        self.tokens = 0

    @property
    def error(self) -> str | None:
        return self._matcher.get_error() if self._matcher.is_error() else None

    def is_accepting(self) -> bool:
        return self._matcher.is_accepting()

    def finished(self) -> bool:
        """The grammar is complete (the turn's <|call|> or <|return|> is consumed)."""
        return self._matcher.is_stopped()

    def consume(self, token: int) -> bool:
        """Advance past the sampled token; False (and switched off) if the grammar refused it."""
        if not self.active:
            return False
        self.tokens += 1
        if self._matcher.consume_token(token):
            return True
        self._switch_off(f"token {token} was refused")
        return False

    def valid_prefix(self, tokens: Sequence[int]) -> int:
        """How many of `tokens` the grammar allows in a row from here (speculative drafts are
        cut there: a drafted token the mask would refuse can never be accepted)."""
        return self._matcher.validate_tokens(list(tokens)) if self.active else len(tokens)

    def masks_along(self, draft: Sequence[int], vocab_size: int) -> torch.Tensor | None:
        """A verify step's masks: row j allows what may follow draft[:j] (d + 1 rows); the
        matcher ends where it began. None when switched off (every row allows everything)."""
        if not self.active:
            return None
        bitmask = new_bitmask(len(draft) + 1, vocab_size)
        row_bytes = bitmask.shape[1] * 4
        consumed = 0
        for j in range(len(draft) + 1):
            self._matcher.unsafe_compute_mask_ptr(bitmask.data_ptr() + j * row_bytes, row_bytes)
            if j == len(draft) or not self._matcher.consume_token(draft[j]):
                break  # drafts are cut to valid_prefix first, so only the end stops here
            consumed += 1
        self._matcher.rollback(consumed)
        if self._matcher.is_error():
            self._switch_off("llguidance failed along a draft")
            return None
        return bitmask

    def allows(self, token: int) -> bool:
        """Whether `token` may come next (for tests; the engine uses fill_bitmask)."""
        return self._matcher.validate_tokens([token]) == 1

    def _switch_off(self, why: str) -> None:
        self.active = False
        SequenceMatcher.failures += 1
        log.warning("constrained decoding switched off for a sequence after %d tokens: %s (%s)",
                    self.tokens, why, self.error or "no llguidance error")


def new_bitmask(rows: int, vocab_size: int) -> torch.Tensor:
    """An all-allowed int32 bitmask [rows, ceil(V / 32)] on the CPU, pinned where CUDA is."""
    return torch.full((rows, (vocab_size + 31) // 32), -1, dtype=torch.int32, pin_memory=torch.cuda.is_available())


def fill_bitmask(matchers: Sequence[SequenceMatcher | None], bitmask: torch.Tensor) -> None:
    """Row i of `bitmask` [B, W] becomes matcher i's mask; rows of None or switched-off
    matchers stay as they are (all ones from new_bitmask)."""
    assert bitmask.is_contiguous() and bitmask.dtype == torch.int32 and bitmask.shape[0] >= len(matchers)
    jobs = [(m._matcher, i) for i, m in enumerate(matchers) if m is not None and m.active]
    row_bytes = bitmask.shape[1] * 4
    if len(jobs) == 1:  # one sequence: the pool's hand-off costs more than it saves
        m, i = jobs[0]
        m.unsafe_compute_mask_ptr(bitmask.data_ptr() + i * row_bytes, row_bytes)
    elif jobs:
        _pool().unsafe_compute_mask_ptr(jobs, bitmask.data_ptr(), row_bytes, bitmask.shape[0])
    for i, seq in enumerate(matchers):
        if seq is not None and seq.active and seq._matcher.is_error():
            seq._switch_off("llguidance failed computing its mask")
            bitmask[i].fill_(-1)


def consume_all(pairs: Sequence[tuple[SequenceMatcher, int]]) -> None:
    """Each matcher consumes its sequence's sampled token; many at once on the pool."""
    active = [(m, t) for m, t in pairs if m.active]
    if len(active) < 8:  # a few: the plain calls are cheaper than the hand-off
        for m, t in active:
            m.consume(t)
        return
    results = _pool().consume_token_par([(m._matcher, t) for m, t in active])
    for (m, t), ok in zip(active, results, strict=True):
        m.tokens += 1
        if not ok:
            m._switch_off(f"token {t} was refused")


def constraint_stats() -> dict[str, Any]:
    """The engine's constrained-decoding numbers for /health and /metrics."""
    return {"constraint_failures": SequenceMatcher.failures}


def _pool() -> llguidance.LLExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = llguidance.LLExecutor()
        return _executor
