"""vLLM v1 style scheduling: each step gives every sequence some tokens to catch up on.

A sequence's `num_computed_tokens` catches up with its `num_tokens`. Running sequences are
served first (decodes take one token, prefills a chunk), then waiting ones are admitted while
the step's token budget, the batch size and the KV blocks allow. When blocks run out, the
most recently admitted running sequence is preempted: its blocks are released (full ones
stay in the prefix cache, so the recompute is mostly a prefix hit) and it waits again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from codexpc.engine.api import FinishReason
from codexpc.engine.paged.block_manager import BlockManager
from codexpc.engine.paged.sequence import SeqStatus, Sequence
from codexpc.engine.speculative.policy import Speculator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int  # sequences in one step's batch
    max_num_batched_tokens: int  # tokens computed in one step, all sequences together
    context_length: int  # prompt + output may not pass this

    def __post_init__(self) -> None:
        assert self.max_num_seqs > 0 and self.max_num_batched_tokens > 0


@dataclass
class ScheduledSeq:
    seq: Sequence
    num_new_tokens: int  # tokens from num_computed_tokens on to compute this step (the draft too)
    # Speculative: tokens drafted after the sequence's last one, verified this step (their KV is
    # written; what is rejected is rolled back in update). Empty for a plain step.
    draft: list[int] = field(default_factory=list)

    @property
    def samples(self) -> bool:
        """Whether this step reaches the sequence's last token, so its logits are sampled."""
        return self.seq.num_computed_tokens + self.num_new_tokens - len(self.draft) == self.seq.num_tokens


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledSeq] = field(default_factory=list)  # in batch order
    preempted: list[Sequence] = field(default_factory=list)  # lost their KV this step
    finished: list[Sequence] = field(default_factory=list)  # ended here: they outgrew the whole cache
    may_draft_next: bool = False  # a scheduled sequence may draft next step: no step run ahead

    @property
    def num_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled

    @property
    def num_drafted(self) -> int:
        return sum(len(s.draft) for s in self.scheduled)


class Scheduler:
    def __init__(self, config: SchedulerConfig, blocks: BlockManager, speculator: Speculator | None = None) -> None:
        self.config = config
        self.blocks = blocks
        self.speculator = speculator
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self._arrivals = 0

    def add(self, seq: Sequence) -> None:
        seq.arrival = self._arrivals
        self._arrivals += 1
        if self.speculator is not None:
            seq.draft_state = self.speculator.new_state()
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.config.max_num_batched_tokens
        for seq in list(self.running):
            if budget == 0:
                break
            if seq.status is not SeqStatus.RUNNING:
                continue  # preempted earlier in this loop
            n = min(seq.num_uncomputed, budget)
            draft = self._draft(seq, budget) if seq.num_uncomputed == 1 else []
            if draft and not self.blocks.allocate_slots(seq, n + len(draft)):
                draft = []  # a draft never preempts anyone: without room it is dropped
            if not draft and not self._make_room(seq, n, out):
                continue
            out.scheduled.append(ScheduledSeq(seq, n + len(draft), draft))
            budget -= n + len(draft)
        if not out.preempted:  # admitting while preempting would thrash
            budget = self._admit(budget, out)
        if self.speculator is not None:
            out.may_draft_next = any(self.speculator.may_draft(s.seq.draft_state, len(self.running))
                                     for s in out.scheduled)
        return out

    # -- speculative decoding (codexpc/engine/speculative) -------------------------------
    def _draft(self, seq: Sequence, budget: int) -> list[int]:
        """Tokens to verify after a decoding sequence's last one: no more than the step's
        budget, the sequence's max_new_tokens and the context leave room for (the step that
        accepts d drafts appends d + 1 tokens)."""
        if self.speculator is None or seq.draft_state is None:
            return []
        limit = min(budget - 1, seq.params.max_new_tokens - seq.num_output_tokens - 1,
                    self.config.context_length - seq.num_tokens - 1)
        draft = self.speculator.propose(seq, seq.draft_state, seq.token_ids, len(self.running), limit)
        if draft and seq.matcher is not None:  # constrained: only what the grammar allows next
            draft = draft[: seq.matcher.valid_prefix(draft)]
        return draft

    def _update_verified(self, s: ScheduledSeq, tokens: list[int]) -> bool:
        """A verify step's outcome: `tokens` are the accepted drafts and the model's next token;
        cut in place to those kept (a stop token ends the sequence early). The KV of the
        sequence's old last token and of the accepted drafts is valid; that of the rejected ones
        is not: they lie at or past num_computed_tokens, so the prefix cache never registers
        them (only blocks wholly below it) and the next steps overwrite them. Blocks wholly past
        the sequence's tokens held only rejected drafts and go back. -> whether it finished."""
        seq = s.seq
        assert self.speculator is not None and seq.draft_state is not None
        accepted = len(tokens) - 1
        self.speculator.observe(seq.draft_state, len(s.draft), accepted)
        start = seq.num_computed_tokens
        reason: FinishReason | None = None
        kept = 0
        for token in tokens:
            seq.token_ids.append(token)
            kept += 1
            reason = finish_reason(seq, self.config.context_length)
            if reason is not None:
                break
        del tokens[kept:]
        seq.num_computed_tokens = min(start + 1 + accepted, seq.num_tokens)
        self.blocks.cache_full_blocks(seq)
        if reason is not None:
            seq.finish_reason = reason
            self.finish(seq)
            return True
        self.blocks.truncate(seq, seq.num_tokens)
        return False

    def _make_room(self, seq: Sequence, n: int, out: SchedulerOutput) -> bool:
        """Allocate blocks for `seq`, preempting the newest running sequences if needed."""
        while not self.blocks.allocate_slots(seq, n):
            if self.running == [seq]:
                # Alone and still out of blocks: the cache is smaller than this sequence, and
                # recomputing would only come back here. It has reached its usable context.
                log.warning("%s needs more KV than the whole cache holds (%d tokens)", seq.request_id,
                            self.blocks.num_blocks * self.blocks.block_size)
                seq.finish_reason = "context"
                self.finish(seq)
                out.finished.append(seq)
                return False
            victim = self.running[-1]
            self._preempt(victim, out)
            if victim is seq:
                return False
        return True

    def _admit(self, budget: int, out: SchedulerOutput) -> int:
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            prefix = self.blocks.lookup_prefix(seq) if not seq.block_table else []
            cached = len(prefix) * self.blocks.block_size
            n = min(seq.num_uncomputed - cached, budget)
            if not self.blocks.allocate_slots(seq, n, prefix):
                if not self.running and not out.scheduled:
                    # Nothing else holds blocks, so this can never fit: a bug in sizing.
                    raise RuntimeError(f"{seq.request_id}: {n} tokens do not fit an empty cache")
                break
            self.waiting.popleft()
            self.blocks.record_lookup(seq, len(prefix))
            if seq.num_preemptions == 0:
                seq.num_cached_tokens = cached
            seq.status = SeqStatus.RUNNING
            self.running.append(seq)
            out.scheduled.append(ScheduledSeq(seq, n))
            budget -= n
        return budget

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        log.info("preempting %s (%d tokens) for lack of KV blocks", seq.request_id, seq.num_tokens)
        self.running.remove(seq)
        out.scheduled = [s for s in out.scheduled if s.seq is not seq]
        self.blocks.free(seq)
        seq.num_computed_tokens = 0
        seq.status = SeqStatus.WAITING
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)
        out.preempted.append(seq)

    def update(self, out: SchedulerOutput, sampled: dict[str, int],
               verified: dict[str, list[int]] | None = None) -> list[Sequence]:
        """Advance counters after the model ran; append sampled tokens; return finished ones.

        `sampled` maps request id to the token drawn for each scheduled seq that `samples`;
        `verified` the tokens of each one that had a draft (see _update_verified).
        """
        finished: list[Sequence] = []
        for s in out.scheduled:
            if s.draft:
                assert verified is not None
                if self._update_verified(s, verified[s.seq.request_id]):
                    finished.append(s.seq)
                continue
            seq, samples = s.seq, s.samples  # `samples` reads the counter about to move
            seq.num_computed_tokens += s.num_new_tokens
            self.blocks.cache_full_blocks(seq)
            if not samples:
                continue
            seq.token_ids.append(sampled[seq.request_id])
            reason = finish_reason(seq, self.config.context_length)
            if reason is not None:
                seq.finish_reason = reason
                self.finish(seq)
                finished.append(seq)
        return finished

    def finish(self, seq: Sequence) -> None:
        """Remove `seq` wherever it is and release its blocks (also used for cancel)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq)
        seq.status = SeqStatus.FINISHED

    def finish_all(self, seqs: Iterable[Sequence]) -> None:
        for seq in list(seqs):
            self.finish(seq)


def finish_reason(seq: Sequence, context_length: int) -> FinishReason | None:
    """Why `seq` stops after its newest token, or None. The stop token itself is kept."""
    if seq.last_token in seq.params.stop_token_ids:
        return "stop"
    if seq.num_output_tokens >= seq.params.max_new_tokens:
        return "length"
    if seq.num_tokens >= context_length:
        return "context"
    return None
