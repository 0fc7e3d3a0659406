"""CUDA graphs of the decode step at a few batch sizes.

A decode step of the 20b is about a thousand kernel launches; at batch 1 the GPU work is about
1.2 ms, so launching them one by one from Python would cost more than the work. Each graph
is captured once with static input buffers; a step of B sequences pads to the next captured
size, the padding rows pointing at a scratch block that no sequence owns.
"""

from __future__ import annotations

import logging

import torch

from codexpc.engine.kernels.attention import PagedBatch
from codexpc.engine.paged.paged_model import PagedModel, StepInputs

log = logging.getLogger(__name__)

GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)


class DecodeGraphs:
    def __init__(self, model: PagedModel, max_batch: int, max_blocks_per_seq: int, scratch_block: int) -> None:
        self.model = model
        self.sizes = [b for b in GRAPH_BATCH_SIZES if b <= max_batch]
        self.scratch_block = scratch_block
        dev = model.cache.k.device
        n = self.sizes[-1]
        page = model.cache.block_size
        self.tokens = torch.zeros(n, dtype=torch.int64, device=dev)
        self.positions = torch.zeros(n, dtype=torch.int64, device=dev)
        self.query_start = torch.arange(n + 1, dtype=torch.int32, device=dev)
        self.context_lens = torch.ones(n, dtype=torch.int32, device=dev)
        self.tables = torch.full((n, max_blocks_per_seq), scratch_block, dtype=torch.int32, device=dev)
        self.slots = torch.full((n,), scratch_block * page, dtype=torch.int64, device=dev)
        self.rows = torch.arange(n, dtype=torch.int64, device=dev)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._logits: dict[int, torch.Tensor] = {}

    def _inputs(self, b: int) -> StepInputs:
        batch = PagedBatch(self.query_start[: b + 1], self.context_lens[:b], self.tables[:b], self.slots[:b], 1)
        return StepInputs(self.tokens[:b], self.positions[:b], batch, self.rows[:b])

    def capture(self) -> None:
        pool = torch.cuda.graph_pool_handle()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for b in reversed(self.sizes):  # largest first, so smaller graphs reuse its pool
                self.model.forward(self._inputs(b))  # compile kernels, settle the allocator
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool, stream=stream):
                    self._logits[b] = self.model.forward(self._inputs(b))
                self._graphs[b] = graph
        torch.cuda.current_stream().wait_stream(stream)
        self.reset_padding()
        log.info("captured decode graphs for batch sizes %s", self.sizes)

    def reset_padding(self) -> None:
        """Point every row at the scratch block (capture wrote nothing anyone reads)."""
        self.context_lens.fill_(1)
        self.tables.fill_(self.scratch_block)
        self.slots.fill_(self.scratch_block * self.model.cache.block_size)

    def size_for(self, b: int) -> int | None:
        return next((s for s in self.sizes if s >= b), None)

    def run(self, tokens: list[int], positions: list[int], tables: list[list[int]], slots: list[int]) -> torch.Tensor:
        """One decode step of len(tokens) sequences -> logits [B, V] (a view; copy to keep)."""
        b = len(tokens)
        size = self.size_for(b)
        assert size is not None, b
        dev = self.tokens.device
        self.tokens[:b].copy_(torch.tensor(tokens), non_blocking=True)
        self.positions[:b].copy_(torch.tensor(positions), non_blocking=True)
        self.context_lens[:b].copy_(torch.tensor([p + 1 for p in positions], dtype=torch.int32), non_blocking=True)
        self.slots[:b].copy_(torch.tensor(slots), non_blocking=True)
        width = max(len(t) for t in tables)
        table = torch.tensor([t + [self.scratch_block] * (width - len(t)) for t in tables], dtype=torch.int32)
        self.tables[:b, :width].copy_(table.to(dev, non_blocking=True))
        if size > b:  # rows a bigger step left behind must not write into live blocks
            self.context_lens[b:size].fill_(1)
            self.tables[b:size, 0].fill_(self.scratch_block)
            self.slots[b:size].fill_(self.scratch_block * self.model.cache.block_size)
        return self.replay(b)

    def run_next(self, b: int, tokens: torch.Tensor) -> torch.Tensor:
        """The step after the last one run, on the device alone: each of the b sequences brings
        `tokens` (on the device) one position further, its slot the next of the same KV block
        (the caller checks that it is). -> logits [B, V] (a view)."""
        self.tokens[:b].copy_(tokens)
        self.positions[:b] += 1
        self.context_lens[:b] += 1
        self.slots[:b] += 1
        return self.replay(b)

    def replay(self, b: int) -> torch.Tensor:
        size = self.size_for(b)
        assert size is not None, b
        self._graphs[size].replay()
        return self._logits[size][:b]
