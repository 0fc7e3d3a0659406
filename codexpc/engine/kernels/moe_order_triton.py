"""order_by_expert (moe_mxfp4.py) in one Triton launch, for the slot counts of decode batches.

The PyTorch version is about twelve kernels (a radix sort among them: at 64 sequences on an
H200 the sort alone took 27 us a layer, more than the attention). Here one program builds the
one-hot [slots, experts] matrix in registers: its column sums are the counts, its running
sums down the slots each slot's rank within its expert, so no sort is needed. The result is
the same ExpertOrder, slot for slot (slots of one expert keep their order, as the stable sort
keeps them).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# The one-hot matrix lives in one program's registers: slots x experts at most this many.
MAX_CELLS = 32768


@triton.jit
def _order_kernel(ids_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr, S, capacity,
                  E: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_E: tl.constexpr, BM: tl.constexpr,
                  BLOCK_C: tl.constexpr, BLOCK_B: tl.constexpr):
    slots = tl.arange(0, BLOCK_S)
    experts = tl.arange(0, BLOCK_E)
    ids = tl.load(ids_ptr + slots, mask=slots < S, other=BLOCK_E).to(tl.int32)
    onehot = (ids[:, None] == experts[None, :]).to(tl.int32)  # [BLOCK_S, BLOCK_E]
    counts = tl.sum(onehot, axis=0)  # [BLOCK_E]
    padded = (counts + BM - 1) // BM * BM
    ends = tl.cumsum(padded, axis=0)
    starts = ends - padded
    rank = tl.sum(tl.cumsum(onehot, axis=0) * onehot, axis=1) - 1  # [BLOCK_S] within its expert
    pos = tl.sum(onehot * starts[None, :], axis=1) + rank
    total = tl.sum(padded, axis=0)
    # Padding rows hold S (one past the last slot), then each slot goes to its place.
    for c0 in range(0, capacity, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        tl.store(sorted_ptr + c, tl.full([BLOCK_C], 0, tl.int32) + S, mask=c < capacity)
    tl.debug_barrier()
    tl.store(sorted_ptr + pos, slots, mask=slots < S)
    # Block b's expert: how many experts' runs end at or before its first row (the last
    # expert for the unused blocks past the end, as the PyTorch version clamps it).
    blocks = tl.arange(0, BLOCK_B)
    first = blocks * BM
    ended = (ends[None, :] <= first[:, None]) & (experts[None, :] < E)
    expert = tl.minimum(tl.sum(ended.to(tl.int32), axis=1), E - 1)
    tl.store(block_expert_ptr + blocks, expert, mask=first < capacity)
    tl.store(num_padded_ptr + tl.arange(0, 1), tl.full([1], 0, tl.int32) + total)


def fits(num_slots: int, num_experts: int) -> bool:
    return triton.next_power_of_2(num_slots) * triton.next_power_of_2(num_experts) <= MAX_CELLS


def launch_order(ids: torch.Tensor, num_experts: int, block_m: int,
                 capacity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids [T, k] -> (sorted_slots [capacity], block_expert [capacity / block_m], num_padded [1]), int32."""
    flat = ids.flatten()
    s = flat.numel()
    sorted_slots = torch.empty(capacity, dtype=torch.int32, device=ids.device)
    num_blocks = capacity // block_m
    block_expert = torch.empty(num_blocks, dtype=torch.int32, device=ids.device)
    num_padded = torch.empty(1, dtype=torch.int32, device=ids.device)
    block_s, block_e = triton.next_power_of_2(s), triton.next_power_of_2(num_experts)
    _order_kernel[(1,)](flat, sorted_slots, block_expert, num_padded, s, capacity, E=num_experts, BLOCK_S=block_s,
                        BLOCK_E=block_e, BM=block_m, BLOCK_C=1024, BLOCK_B=triton.next_power_of_2(num_blocks),
                        num_warps=8 if block_s * block_e > 4096 else 4)
    return sorted_slots, block_expert, num_padded
