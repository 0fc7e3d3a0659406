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
    num_new_tokens: int  # tokens from num_computed_tokens on to compute this step

    @property
    def samples(self) -> bool:
        """Whether this step reaches the sequence's last token, so its logits are sampled."""
        return self.seq.num_computed_tokens + self.num_new_tokens == self.seq.num_tokens


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledSeq] = field(default_factory=list)  # in batch order
    preempted: list[Sequence] = field(default_factory=list)  # lost their KV this step
    finished: list[Sequence] = field(default_factory=list)  # ended here: they outgrew the whole cache

    @property
    def num_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled


class Scheduler:
    def __init__(self, config: SchedulerConfig, blocks: BlockManager) -> None:
        self.config = config
        self.blocks = blocks
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self._arrivals = 0

    def add(self, seq: Sequence) -> None:
        seq.arrival = self._arrivals
        self._arrivals += 1
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
            if not self._make_room(seq, n, out):
                continue
            out.scheduled.append(ScheduledSeq(seq, n))
            budget -= n
        if not out.preempted:  # admitting while preempting would thrash
            budget = self._admit(budget, out)
        return out

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

    def update(self, out: SchedulerOutput, sampled: dict[str, int]) -> list[Sequence]:
        """Advance counters after the model ran; append sampled tokens; return finished ones.

        `sampled` maps request id to the token drawn for each scheduled seq that `samples`.
        """
        finished: list[Sequence] = []
        for s in out.scheduled:
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
