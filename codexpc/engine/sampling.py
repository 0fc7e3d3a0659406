"""Choosing the next token: greedy, or temperature and top-p with a seeded generator per sequence.

Each sampled token takes one uniform number from its sequence's own CPU `torch.Generator`, so
the same seed gives the same draws on every device and whatever else the engine runs at the same
time. The rest happens where the logits are: softmax, the top-p nucleus, and the inverse of the
cumulative distribution (in float64, so that the choice does not hang on the order of a sum).
On a GPU that is one small transfer a step instead of the whole distribution (201k floats) a
token, and the chosen tokens stay on the device, where the next decode step can start from them
before the host has seen them (paged/model_runner.py runs steps ahead).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from codexpc.engine.api import SamplingParams


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for one sequence; no seed means a fresh random one."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed if seed is not None else random.SystemRandom().getrandbits(63))
    return generator


def draw(params: SamplingParams, generator: torch.Generator | None) -> float:
    """The uniform number one token of this sequence uses (none for greedy: 0.0, no draw)."""
    if params.temperature == 0:
        return 0.0
    assert generator is not None, "a sampled sequence needs its generator"
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def sample_rows(logits: torch.Tensor, params: Sequence[SamplingParams], uniforms: Sequence[float]) -> torch.Tensor:
    """logits [B, V] -> one token id a row, int64 [B] on logits' device. Row b is greedy if its
    temperature is 0, else drawn with uniforms[b] from softmax(logits / temperature) cut to the
    top-p nucleus: the smallest set of the most likely tokens whose mass reaches top_p (the most
    likely token always stays).

    Nothing here waits for the GPU: the settings go over through pinned memory (a plain copy
    from a Python list would first drain the stream), and the distribution is left unnormalized
    (exp(x - max), then its cumulative sum: torch's softmax over one 201k row is one thread
    block, 49 us on an H100, bench/results/sampling_probe-h100.txt)."""
    dev = logits.device
    if all(p.temperature == 0 for p in params):
        return logits.argmax(dim=-1)
    temps = [p.temperature if p.temperature > 0 else 1.0 for p in params]
    x = logits.float()
    if len(set(temps)) > 1:
        x = x / _on(dev, temps, torch.float32)[:, None]
    elif temps[0] != 1.0:
        x = x / temps[0]
    weights = torch.exp(x - x.max(dim=-1, keepdim=True).values).double()  # [B, V], unnormalized
    ids = None
    if any(p.top_p < 1.0 for p in params):
        weights, ids = torch.sort(weights, dim=-1, descending=True)
        before = _cumsum(weights)[:, : weights.shape[-1]] - weights  # mass of the tokens ranked above each one
        top_p = _on(dev, [p.top_p for p in params], torch.float64)
        keep = before < top_p[:, None] * weights.sum(dim=-1, keepdim=True)
        keep[:, 0] = True
        weights = torch.where(keep, weights, 0.0)
    cdf = _cumsum(weights)  # [B, V'] (V' >= V: zero weights at the end)
    target = _on(dev, list(uniforms), torch.float64) * cdf[:, -1]
    pos = torch.searchsorted(cdf, target[:, None], right=True).clamp_(max=logits.shape[-1] - 1)  # [B, 1]
    chosen = (pos if ids is None else ids.gather(-1, pos))[:, 0]
    if any(p.temperature == 0 for p in params):  # a mixed batch
        is_greedy = _on(dev, [p.temperature == 0 for p in params], torch.bool)
        chosen = torch.where(is_greedy, logits.argmax(dim=-1), chosen)
    return chosen


_CHUNK = 1024


def _cumsum(weights: torch.Tensor) -> torch.Tensor:
    """Inclusive cumulative sums along each row [B, V], padded with zeros to whole chunks. Torch
    scans a row in one thread block (325 us for 8 rows of 201k in float64 on an H100); here the
    chunks are scanned side by side and offset by the running sum of the chunks before them."""
    b, v = weights.shape
    chunks = torch.nn.functional.pad(weights, (0, (-v) % _CHUNK)).view(b, -1, _CHUNK)  # [B, R, C]
    inner = torch.cumsum(chunks, dim=-1)
    totals = inner[:, :, -1]  # [B, R]
    return (inner + (torch.cumsum(totals, dim=-1) - totals)[:, :, None]).view(b, -1)


def _on(dev: torch.device, values: list[float] | list[bool], dtype: torch.dtype) -> torch.Tensor:
    """A few values on `dev` without waiting for the work queued there (pinned, async copy)."""
    t = torch.tensor(values, dtype=dtype)
    return t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else t


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """logits [V] (any device) -> one token id."""
    return int(sample_rows(logits[None], [params], [draw(params, generator)])[0].item())
