"""Choosing the next token: greedy, or temperature and top-p with a seeded generator per sequence.

The random draw happens on the CPU with the sequence's own `torch.Generator`, so the same seed
gives the same tokens on every device and whatever else the engine runs at the same time.
"""

from __future__ import annotations

import random

import torch

from codexpc.engine.api import SamplingParams


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for one sequence; no seed means a fresh random one."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed if seed is not None else random.SystemRandom().getrandbits(63))
    return generator


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """logits [V] (any device) -> one token id."""
    if params.temperature == 0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)  # [V]
    if params.top_p >= 1.0:
        return int(torch.multinomial(probs.cpu(), 1, generator=generator).item())
    probs, ids = torch.sort(probs, descending=True)  # [V] each
    # Keep the smallest prefix whose mass reaches top_p (the most likely token always stays).
    before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
    keep = max(int((before < params.top_p).sum().item()), 1)
    choice = torch.multinomial(probs[:keep].cpu(), 1, generator=generator)  # need not sum to 1
    return int(ids[int(choice.item())].item())
