"""Turns a scheduler step into tensors, runs the paged model, and samples each sequence's token.

Decode-only steps (every sequence brings one token) of a few batch sizes replay CUDA graphs:
at batch 1 a step is about three hundred small launches, and the graph removes their CPU cost.

Running ahead: between two steps the host schedules, builds the inputs and copies them over
while the GPU waits (H100, batch 1: 0.21-0.26 ms a step beside 1.94 ms of GPU work). When every
sequence of a graph step keeps its next token in the same KV block, everything the next step
needs is known on the device: the tokens are sampled there (sampling.py), position, length and
slot move by one. The runner then launches that step before it returns this one's tokens, and when the
scheduler asks for exactly it (same sequences, tokens, positions, slots), uses its logits
instead of running it again. Otherwise (a sequence finished, one joined, a block boundary) the
step ahead is dropped: it wrote only a KV entry one past a live sequence's end, in its own
partial block, which the real step rewrites or nobody reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from codexpc.engine.kernels.attention import PagedBatch
from codexpc.engine.model import Transformer
from codexpc.engine.paged.cache_sizing import CacheBudget
from codexpc.engine.paged.decode_graphs import DecodeGraphs
from codexpc.engine.paged.kernel_plan import KernelPlan, default_plan
from codexpc.engine.paged.paged_model import PagedKVCache, PagedModel, StepInputs
from codexpc.engine.paged.scheduler import SchedulerOutput
from codexpc.engine.paged.sequence import Sequence
from codexpc.engine.sampling import constraint_bitmask, draw, sample_rows
from codexpc.engine.speculative.verify import split_verify_logits

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class HostStep:
    """The step's inputs as Python lists, before they go to the device in one copy each."""

    tokens: list[int]
    positions: list[int]
    query_start: list[int]
    context_lens: list[int]
    block_tables: list[list[int]]
    slots: list[int]
    sample_rows: list[int]
    samplers: list[Sequence]  # the sequences that sample, in sample_rows order
    # Speculative: each sampler's drafted tokens (it has 1 + d rows in sample_rows).
    drafts: list[list[int]] = field(default_factory=list)


def build_host_step(out: SchedulerOutput, block_size: int) -> HostStep:
    tokens: list[int] = []
    positions: list[int] = []
    query_start = [0]
    context_lens: list[int] = []
    tables: list[list[int]] = []
    slots: list[int] = []
    sample_rows: list[int] = []
    samplers: list[Sequence] = []
    drafts: list[list[int]] = []
    for s in out.scheduled:
        seq, start = s.seq, s.seq.num_computed_tokens
        end = start + s.num_new_tokens
        tokens += seq.token_ids[start : end - len(s.draft)]
        tokens += s.draft  # speculative: drafted tokens follow the last real one
        positions += range(start, end)
        slots += [seq.block_table[p // block_size] * block_size + p % block_size for p in range(start, end)]
        query_start.append(query_start[-1] + s.num_new_tokens)
        context_lens.append(end)
        tables.append(seq.block_table)
        if s.samples:
            sample_rows.extend(range(query_start[-1] - 1 - len(s.draft), query_start[-1]))
            samplers.append(seq)
            drafts.append(s.draft)
    return HostStep(tokens, positions, query_start, context_lens, tables, slots, sample_rows, samplers, drafts)


@dataclass(frozen=True)
class _Ahead:
    """A decode step launched before the scheduler asked for it, and what it assumed."""

    request_ids: tuple[str, ...]
    tokens: list[int]
    positions: list[int]
    slots: list[int]
    table_lens: list[int]
    logits: torch.Tensor  # the graph's output: valid until its next replay

    def matches(self, out: SchedulerOutput, host: HostStep) -> bool:
        return (tuple(s.seq.request_id for s in out.scheduled) == self.request_ids and host.tokens == self.tokens
                and host.positions == self.positions and host.slots == self.slots
                and [len(t) for t in host.block_tables] == self.table_lens)


class ModelRunner:
    def __init__(self, model: PagedModel, budget: CacheBudget, graphs: DecodeGraphs | None = None) -> None:
        self.model = model
        self.plan = model.plan
        self.budget = budget
        self.device = model.cache.k.device
        self.graphs = graphs
        self._ahead: _Ahead | None = None
        self.steps_ahead_used = 0  # steps answered from a step run ahead (for benches and tests)
        self._host_tokens: torch.Tensor | None = None  # pinned: the sampled tokens' way back to the host

    @classmethod
    def create(cls, transformer: Transformer, budget: CacheBudget, plan: KernelPlan | None = None) -> ModelRunner:
        """The runner of `transformer` with `plan`'s kernels (None: the device's default_plan)."""
        device = transformer.embedding.weight.device
        dtype = transformer.embedding.weight.dtype
        config = transformer.config
        plan = plan if plan is not None else default_plan(device)
        log.info("kernel plan: %s", plan)
        # One block more than the manager hands out: the scratch block of padded graph rows.
        cache = PagedKVCache(config, budget.num_blocks + 1, budget.block_size, dtype, device)
        model = PagedModel(transformer, cache, plan)
        runner = cls(model, budget)
        if plan.kernels:
            runner.warm_up()
        if plan.cuda_graphs and plan.kernels:
            max_blocks = -(-config.context_length // budget.block_size)
            graphs = DecodeGraphs(model, budget.max_num_seqs, max_blocks, scratch_block=budget.num_blocks)
            graphs.capture()
            runner.graphs = graphs
        return runner

    def release(self) -> None:
        """Drop the KV cache, the graphs and the weights now (a reload loads the next model
        while this object may still be referenced)."""
        self.graphs = None
        self._ahead = None
        self.model.cache.k = self.model.cache.v = torch.empty(0)
        if self.device.type == "cuda":
            self.model.model.to("meta")
            torch.cuda.empty_cache()

    def warm_up(self) -> None:
        """Compile every kernel variant a step can pick, before any request: a Triton compile
        in the middle of a request would add a second or more to its latency."""
        bs = self.budget.block_size
        for n in self.plan.warmup_tokens:
            if n > self.budget.max_num_batched_tokens or -(-n // bs) > self.budget.num_blocks:
                continue
            # Nothing is cached yet, so blocks 0.. may hold garbage; slot = position here.
            table = list(range(-(-n // bs)))
            host = HostStep([0] * n, list(range(n)), [0, n], [n], [table], list(range(n)), [n - 1], [])
            self.model.forward(self._to_device(host))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self, out: SchedulerOutput, generators: dict[str, torch.Generator]) -> dict[str, int]:
        """Run one scheduled step; returns the sampled token of every sequence that samples."""
        host = build_host_step(out, self.budget.block_size)
        ahead, self._ahead = self._ahead, None
        if not self._graph_fits(out):
            return self._sample(host, self.model.forward(self._to_device(host)), generators)  # [B', V] logits
        assert self.graphs is not None
        if ahead is not None and ahead.matches(out, host):
            logits = ahead.logits
            self.steps_ahead_used += 1
        else:
            logits = self.graphs.run(host.tokens, host.positions, host.block_tables, host.slots)
        if self.plan.run_ahead and not out.may_draft_next and all((p + 1) % self.budget.block_size != 0 for p in host.positions):
            return self._sample_running_ahead(out, host, logits, generators)
        return self._sample(host, logits, generators)

    def verify(self, out: SchedulerOutput, generators: dict[str, torch.Generator]
               ) -> tuple[dict[str, int], dict[str, list[int]]]:
        """A step in which some sequences verify drafted tokens (speculative/verify.py): run
        eagerly, never from a graph, never run ahead (its outcome decides the next step's
        inputs). A step run ahead before it is dropped (see the module's docstring).
        -> (sampled tokens of sequences without a draft, verified tokens of those with one)."""
        self._ahead = None
        host = build_host_step(out, self.budget.block_size)
        logits = self.model.forward(self._to_device(host))  # [rows, V]
        return split_verify_logits(logits, host.samplers, host.drafts, generators)

    def _sample_running_ahead(self, out: SchedulerOutput, host: HostStep, logits: torch.Tensor,
                              generators: dict[str, torch.Generator]) -> dict[str, int]:
        """This step's tokens; the next step is on the GPU before they reach the host."""
        assert self.graphs is not None
        b = len(host.tokens)
        if self._host_tokens is None:
            self._host_tokens = torch.empty(self.graphs.sizes[-1], dtype=torch.int64, pin_memory=True)
        tokens = self._sample_on_device(host, logits, generators)  # [B] on the device
        back = self._host_tokens[:b]
        back.copy_(tokens, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        next_logits = self.graphs.run_next(b, tokens)
        ready.synchronize()  # this step's tokens; the next step keeps running
        sampled = back.tolist()
        self._ahead = _Ahead(tuple(s.seq.request_id for s in out.scheduled), sampled,
                             [p + 1 for p in host.positions], [s + 1 for s in host.slots],
                             [len(t) for t in host.block_tables], next_logits)
        return {seq.request_id: token for seq, token in zip(host.samplers, sampled, strict=True)}

    def _graph_fits(self, out: SchedulerOutput) -> bool:
        if self.graphs is None or self.graphs.size_for(len(out.scheduled)) is None:
            return False
        return all(s.num_new_tokens == 1 and s.samples for s in out.scheduled)

    def _to_device(self, host: HostStep) -> StepInputs:
        dev = self.device

        def ints(values: list[int], dtype: torch.dtype = torch.int32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype).to(dev, non_blocking=True)

        width = max(len(t) for t in host.block_tables)
        tables = [t + [0] * (width - len(t)) for t in host.block_tables]
        lens = [host.query_start[i + 1] - host.query_start[i] for i in range(len(host.context_lens))]
        batch = PagedBatch(
            ints(host.query_start), ints(host.context_lens),
            torch.tensor(tables, dtype=torch.int32).to(dev, non_blocking=True),
            ints(host.slots, torch.int64), max(lens), tuple(host.query_start), tuple(host.context_lens),
        )
        return StepInputs(ints(host.tokens, torch.int64), ints(host.positions, torch.int64), batch,
                          ints(host.sample_rows, torch.int64))

    def _sample(self, host: HostStep, logits: torch.Tensor, generators: dict[str, torch.Generator]) -> dict[str, int]:
        """Every sampling row at once on the logits' device: one copy back, not one a sequence."""
        tokens = self._sample_on_device(host, logits, generators).tolist()
        return {seq.request_id: token for seq, token in zip(host.samplers, tokens, strict=True)}

    @staticmethod
    def _sample_on_device(host: HostStep, logits: torch.Tensor, generators: dict[str, torch.Generator]) -> torch.Tensor:
        uniforms = [draw(seq.params, generators.get(seq.request_id)) for seq in host.samplers]
        # Constrained decoding: the masks are filled here, on the CPU, while the device still runs
        # the step (its logits are not ready yet). A step run ahead needs nothing more: its tokens
        # are sampled in the next step(), after the host has consumed this step's tokens.
        bitmask = constraint_bitmask([seq.matcher for seq in host.samplers], logits.shape[-1])
        return sample_rows(logits, [seq.params for seq in host.samplers], uniforms, bitmask)
