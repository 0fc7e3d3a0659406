"""Which kernel runs each operation of a paged step: one frozen plan, built when the runner is.

The plan is data, not module state: `default_plan(device)` builds the engine's plan once (in
ModelRunner.create), the runner and the paged model pass it down to every kernel dispatch
(kernels/fused.py, routing.py, moe_mxfp4.py, attention.py), and benches and tests build their own
with `dataclasses.replace`. `kernel_table` states the same choices as a table, which
docs/architecture.md shows (tests/test_kernel_plan.py keeps the two equal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

MoeKernel = Literal["gemv", "scaled", "dense_rows"]


@dataclass(frozen=True)
class KernelPlan:
    # The Triton kernels (CUDA with triton installed). False: the reference path, the plain
    # PyTorch function beside each kernel (the one its test compares against), on any device.
    kernels: bool = True
    # Decode-only steps of up to the largest captured batch replay CUDA graphs (decode_graphs.py);
    # with the kernels only (the graphs capture them).
    cuda_graphs: bool = True
    # A graph step launches the next decode step before the host has this one's tokens
    # (model_runner.py says when that is safe); graph steps only.
    run_ahead: bool = True
    # Programmatic dependent launch inside the graphs, where the GPU has it (sm_90+, kernels/pdl.py).
    pdl: bool = True
    # qkv and out projections through our GEMV (dense_gemv_triton.py) up to this many tokens, cuBLAS beyond.
    linear_gemv_max_tokens: int = 1
    # The router's logits through the same GEMV up to this many tokens (every token reads the whole
    # 32 x 2880 gate weight, from L2 after the first: cheap for decode batches only), cuBLAS beyond.
    router_gemv_max_tokens: int = 128
    # The MoE's GEMV pair (moe_gemv_triton.py) up to this many tokens: each slot reads its expert on
    # its own, which pays while few slots share an expert (H100, one layer: 43 us against the scaled
    # dot's 70 at 1 token, 192 against 284 at 8). Beyond, Triton's scaled dot (moe_scaled_triton.py).
    moe_gemv_max_tokens: int = 8
    # The GEMV's e2m1 decode in PTX with packed f16 sums (sm_89+); False: the portable fp32 sums.
    moe_gemv_asm: bool = True
    # Slots per expert from which row blocks over a bf16 copy of the layer's experts run
    # (moe_mxfp4_triton.py): each weight tile then serves several row blocks, and dequantizing it
    # once beats decoding it in each (for the 20b, 4,096 tokens a step).
    moe_dense_min_slots_per_expert: int = 512
    # Prompt lengths run once at start-up, one per kernel variant a step can pick (MoE rows per
    # program 16/32/64/128, the bf16-copy path, the attention's query tiles), so that no Triton
    # compile lands inside a request. Benches that time decode alone pass (1,).
    warmup_tokens: tuple[int, ...] = (1, 40, 400, 1000, 2000, 4096)

    def linear_gemv(self, tokens: int) -> bool:
        return self.kernels and tokens <= self.linear_gemv_max_tokens

    def router_gemv(self, tokens: int) -> bool:
        return self.kernels and tokens <= self.router_gemv_max_tokens

    def moe_kernel(self, tokens: int, num_experts: int, k: int) -> MoeKernel:
        if tokens <= self.moe_gemv_max_tokens:
            return "gemv"
        if tokens * k < self.moe_dense_min_slots_per_expert * num_experts:
            return "scaled"
        return "dense_rows"

    def moe_dense_min_tokens(self, config: ModelConfig) -> int:
        """The first token count at which moe_kernel is "dense_rows"."""
        e, k = config.num_experts, config.experts_per_token
        return max(self.moe_gemv_max_tokens + 1, -(-self.moe_dense_min_slots_per_expert * e // k))


# The plain PyTorch path: CPUs, and CUDA without triton.
REFERENCE = KernelPlan(kernels=False, cuda_graphs=False, run_ahead=False, pdl=False)


def default_plan(device: torch.device) -> KernelPlan:
    """The engine's plan on `device`: every kernel on CUDA with triton, else the reference path."""
    if device.type != "cuda":
        return REFERENCE
    try:
        import triton  # noqa: F401
    except ImportError:
        log.warning("triton is missing: the paged engine falls back to the reference maths")
        return REFERENCE
    return KernelPlan()


@dataclass(frozen=True)
class KernelRow:
    operation: str
    tokens: str  # the step's token counts (all sequences together) this row covers
    cuda: str  # what runs with the plan's kernels
    reference: str  # what the reference path runs, and what the kernel's test compares against


def _span(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{lo}+" if lo > 1 else "all"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def kernel_table(plan: KernelPlan, config: ModelConfig) -> tuple[KernelRow, ...]:
    """Which kernel runs each operation of a layer at each token count, as `plan` decides it."""
    lin, rt, gemv = plan.linear_gemv_max_tokens, plan.router_gemv_max_tokens, plan.moe_gemv_max_tokens
    dense = plan.moe_dense_min_tokens(config)
    norm = "fused.add_rmsnorm_reference"
    return (
        KernelRow("add + RMSNorm", _span(1, gemv), "fused_triton add_rmsnorm, also as f16 pairs for the MoE GEMV", norm),
        KernelRow("add + RMSNorm", _span(gemv + 1, None), "fused_triton add_rmsnorm", norm),
        KernelRow("qkv, out", _span(1, lin), "dense_gemv_triton GEMV", "nn.Linear"),
        KernelRow("qkv, out", _span(lin + 1, None), "cuBLAS (nn.Linear)", "nn.Linear"),
        KernelRow("RoPE + KV write", "all", "fused_triton rope_write_kv", "fused.rope_write_kv_reference"),
        KernelRow("attention, decode", "1 a sequence", "attention_triton, split over the keys and merged while the batch gives few programs",
                  "attention.paged_attention_reference"),
        KernelRow("attention, prefill", "2+ a sequence", "attention_triton paged attention",
                  "attention.paged_attention_reference"),
        KernelRow("router logits", _span(1, rt), "dense_gemv_triton GEMV", "routing.router_reference"),
        KernelRow("router logits", _span(rt + 1, None), "cuBLAS (F.linear)", "routing.router_reference"),
        KernelRow("top-k + softmax", "all", "routing_triton route", "routing.route_reference"),
        KernelRow("MoE experts", _span(1, gemv), "moe_gemv_triton GEMV pair" + (", PTX decode" if plan.moe_gemv_asm else ""),
                  "moe_mxfp4.moe_reference"),
        KernelRow("MoE experts", _span(gemv + 1, dense - 1), "moe_scaled_triton scaled dot (expert order: moe_order_triton)",
                  "moe_mxfp4.moe_reference"),
        KernelRow("MoE experts", _span(dense, None), "moe_mxfp4_triton row blocks over a bf16 copy",
                  "moe_mxfp4.moe_reference"),
    )


def markdown(rows: tuple[KernelRow, ...]) -> str:
    lines = ["| operation | tokens a step | CUDA (kernels) | CPU (reference path) |", "|---|---|---|---|"]
    lines += [f"| {r.operation} | {r.tokens} | {r.cuda} | {r.reference} |" for r in rows]
    return "\n".join(lines)
