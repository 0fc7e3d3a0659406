"""The plain model's own generation loop, no engine around it: the numerics reference whose
tokens the paged engine must reproduce on a CPU (what the retired TorchEngine served)."""

from __future__ import annotations

import torch

from codexpc.engine.api import SamplingParams
from codexpc.engine.model import Transformer
from codexpc.engine.sampling import make_generator, sample


def plain_tokens(model: Transformer, prompt: list[int], params: SamplingParams,
                 context_length: int | None = None) -> list[int]:
    """One sequence: the prompt in one pass, then a token at a time, sampled as the engine does
    (the same seeded generator, one draw a token); stops as the engine's scheduler does."""
    limit = context_length or model.config.context_length
    kv = model.new_kv(len(prompt) + params.max_new_tokens)
    generator = make_generator(params.seed)
    logits = model(torch.tensor(prompt, dtype=torch.long), kv)
    out: list[int] = []
    while True:
        token = sample(logits[-1], params, generator)
        out.append(token)
        if (token in params.stop_token_ids or len(out) >= params.max_new_tokens
                or len(prompt) + len(out) >= limit):
            return out
        logits = model(torch.tensor([token], dtype=torch.long), kv)
