"""How many KV blocks, sequences and tokens per step: derived from free memory and the model.

Nothing here is hand-set per GPU. The engine measures free device memory after the weights
are loaded and calls `budget_for` (which calls `derive_budget`); tests call `derive_budget`
with made-up numbers. Two bounds apply on every device: what the memory can spare, and what
the sequences of one step can use (each at most a whole context), so a small model never takes
gigabytes it cannot fill. On the CPU the memory is a share of the RAM the system can spare
(the user's laptop runs other programs) and a step batches fewer sequences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from codexpc.engine.model_config import ModelConfig
from codexpc.errors import EngineError

# Tokens per step. The MoE sends each token to experts_per_token of num_experts experts, so
# an expert's matmul sees tokens * k / E rows; on an H100 (about 800 TFLOP/s over 3 TB/s,
# a ridge near 270 FLOP per byte of bf16 weight) that needs about 2k tokens per step for the
# 20b's 4-of-32 routing to leave the bandwidth-bound regime. 8k gives margin and keeps a
# decode step that shares the batch with a prefill chunk under about 100 ms.
TARGET_STEP_TOKENS = 8192
# Decode batches beyond this gain little: the step becomes compute-bound on the experts.
MAX_DECODE_BATCH = 256
# A CPU decodes a handful of sequences at a useful speed; more only slows each one.
CPU_MAX_SEQS = 4
# Of the RAM the system reports available, what the KV cache and a step may take on the CPU.
CPU_RAM_SHARE = 0.25
# Memory kept back for the allocator's fragmentation, CUDA graphs and kernels' workspaces.
HEADROOM_FRACTION = 0.08


@dataclass(frozen=True)
class CacheBudget:
    block_size: int  # tokens per KV block
    num_blocks: int  # KV blocks in the pool (each holds every layer's K and V)
    max_num_seqs: int  # sequences in one step
    max_num_batched_tokens: int  # tokens computed in one step
    bytes_per_block: int

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def kv_bytes(self) -> int:
        return self.num_blocks * self.bytes_per_block


def kv_bytes_per_token(config: ModelConfig, dtype_bytes: int = 2) -> int:
    """K and V of every layer for one token (sliding layers keep all of theirs: see block_manager)."""
    return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * dtype_bytes


def activation_bytes_per_token(config: ModelConfig, dtype_bytes: int = 2) -> int:
    """A generous bound on one token's live activations during a step (bf16 unless told)."""
    qkv = (config.num_attention_heads + 2 * config.num_key_value_heads) * config.head_dim
    hidden = 8 * config.hidden_size  # residual, norms, attention out, MoE sums, a spare
    experts = 3 * config.experts_per_token * 2 * config.intermediate_size  # gate+up, swiglu, copies
    return dtype_bytes * (qkv + hidden + experts) + 4 * config.experts_per_token * 2  # router


def logits_bytes(config: ModelConfig, num_seqs: int) -> int:
    return 4 * num_seqs * config.vocab_size * 2  # float32 logits, and the sampler's copy


def derive_budget(
    config: ModelConfig, free_bytes: int, block_size: int = 16, dtype_bytes: int = 2,
    max_num_seqs: int = MAX_DECODE_BATCH,
) -> CacheBudget:
    """Split `free_bytes` (measured after loading weights) between KV blocks and a step's work;
    never more blocks than `max_num_seqs` whole contexts fill."""
    usable = int(free_bytes * (1 - HEADROOM_FRACTION))
    per_block = kv_bytes_per_token(config, dtype_bytes) * block_size
    act = activation_bytes_per_token(config, dtype_bytes)
    step_tokens = min(TARGET_STEP_TOKENS, config.context_length)
    # Shrink the step until its work takes at most a quarter of what is usable.
    while step_tokens > block_size and step_tokens * act > usable // 4:
        step_tokens //= 2
    max_seqs = min(max_num_seqs, step_tokens)
    left = usable - step_tokens * act - logits_bytes(config, max_seqs)
    # Beyond this the blocks only hold prefixes for reuse; one more context per sequence of a
    # step keeps room for those (a Codex session's earlier turns) without hoarding memory.
    needed = (max_seqs + 1) * -(-config.context_length // block_size)
    num_blocks = min(left // per_block, needed)
    if num_blocks < 2 * -(-step_tokens // block_size):
        raise EngineError(
            f"{free_bytes / 2**30:.2f} GiB free leaves room for {max(num_blocks, 0)} KV blocks of "
            f"{block_size} tokens; the model needs more memory than this device has left"
        )
    max_seqs = min(max_seqs, num_blocks)
    return CacheBudget(block_size, int(num_blocks), max_seqs, step_tokens, per_block)


def budget_for(config: ModelConfig, device: torch.device, block_size: int = 16, dtype_bytes: int = 2) -> CacheBudget:
    """The budget for a model loaded on `device`, from what that device has free now."""
    seqs = CPU_MAX_SEQS if device.type == "cpu" else MAX_DECODE_BATCH
    return derive_budget(config, free_bytes(device), block_size, dtype_bytes, max_num_seqs=seqs)


def free_bytes(device: torch.device) -> int:
    """Memory the KV cache and a step may use now: free GPU memory, or a share of spare RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return int(available_ram_bytes() * CPU_RAM_SHARE)


def available_ram_bytes() -> int:
    """RAM the system can give without swapping: Linux's MemAvailable (free pages plus the
    page cache it can drop), else the free pages, else an eighth of the RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError):  # macOS has no SC_AVPHYS_PAGES
        return os.sysconf("SC_PHYS_PAGES") * page // 8
