"""The trained float model as a gpt-oss checkpoint: canonical tensors, experts in MXFP4, bf16 rest.

Written through codexpc.checkpoint's own writer, so the result is an ordinary checkpoint in
any of its layouts, read back by the same code that reads real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from codexpc.checkpoint.base import Layout
from codexpc.checkpoint.tensors import TensorSpec, canonical_specs
from codexpc.checkpoint.writer import write_tensors
from codexpc.engine.mxfp4 import quantize
from codexpc.train.model import TrainModel

# The answers' logits are scaled by this on export: greedy decoding is unchanged, and sampling at
# temperature 1 behaves as the trained model would at 1 / LOGIT_SCALE, so that the few
# low-confidence steps of the tiny model do not wander off into the 201088-token vocabulary.
LOGIT_SCALE = 2.0


def _embedding(model: TrainModel) -> torch.Tensor:
    rows = model.input_index >= 0
    full = model.embedding_base.clone()
    full[rows] += model.embedding_delta[model.input_index[rows]]
    return full


def _unembedding(model: TrainModel) -> torch.Tensor:
    # Every token the answers never use keeps a zero row: its logit is exactly 0, as trained.
    full = torch.zeros(model.c.vocab_size, model.c.hidden_size)
    full[model.output_ids] = model.unembedding_rows * LOGIT_SCALE
    return full


def _block_tensors(model: TrainModel, n: int) -> dict[str, torch.Tensor]:
    attn, mlp, p = model.block_attn[n], model.block_mlp[n], f"block.{n}"
    mlp1_blocks, mlp1_scales = quantize(mlp.mlp1_weight)
    mlp2_blocks, mlp2_scales = quantize(mlp.mlp2_weight)
    return {
        f"{p}.attn.norm.scale": attn.norm.scale,
        f"{p}.attn.qkv.weight": attn.qkv_weight,
        f"{p}.attn.qkv.bias": attn.qkv_bias,
        f"{p}.attn.sinks": attn.sinks,
        f"{p}.attn.out.weight": attn.out_weight,
        f"{p}.attn.out.bias": attn.out_bias,
        f"{p}.mlp.norm.scale": mlp.norm.scale,
        f"{p}.mlp.gate.weight": mlp.gate_weight,
        f"{p}.mlp.gate.bias": mlp.gate_bias,
        f"{p}.mlp.mlp1_weight.blocks": mlp1_blocks,
        f"{p}.mlp.mlp1_weight.scales": mlp1_scales,
        f"{p}.mlp.mlp1_bias": mlp.mlp1_bias,
        f"{p}.mlp.mlp2_weight.blocks": mlp2_blocks,
        f"{p}.mlp.mlp2_weight.scales": mlp2_scales,
        f"{p}.mlp.mlp2_bias": mlp.mlp2_bias,
    }


@torch.no_grad()
def canonical_tensors(model: TrainModel) -> Iterator[tuple[TensorSpec, torch.Tensor]]:
    """Every canonical tensor in `original/` order, each in its checkpoint dtype."""
    named = {"embedding.weight": _embedding(model), "norm.scale": model.norm.scale,
             "unembedding.weight": _unembedding(model)}
    for n in range(model.c.num_hidden_layers):
        named |= _block_tensors(model, n)
    for spec in canonical_specs(model.c):
        yield spec, named[spec.name].detach().to(spec.dtype).contiguous()


def write_trained(model: TrainModel, layout: Layout, out: Path) -> Path:
    """Write the checkpoint; return the path open_checkpoint and create_engine take."""
    return write_tensors(model.c, canonical_tensors(model), layout, out)
