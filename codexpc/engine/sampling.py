"""Choosing the next token: greedy, or temperature and top-p with a seeded generator per sequence.

Each sampled token takes one uniform number from its sequence's own CPU `torch.Generator`, so
the same seed gives the same draws on every device and whatever else the engine runs at the same
time. The rest happens where the logits are: softmax, the top-p nucleus, and the inverse of the
cumulative distribution (in float64, so that the choice does not hang on the order of a sum).
On a GPU that is one small transfer a step instead of the whole distribution (201k floats) a
token, and the chosen tokens stay on the device, where the next decode step can start from them
before the host has seen them (paged/model_runner.py runs steps ahead).

Constrained rows (SamplingParams.constraint, codexpc/constrain/) arrive with a bitmask row
each: int32 [B, ceil(V / 32)], filled on the CPU (constraint_bitmask) while the device runs the
step, copied over with the other settings, and expanded there into -inf on the tokens that
would break the row's grammar, for greedy and sampled rows alike. A batch without constrained
rows builds no mask and pays nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from codexpc.engine.api import SamplingParams

if TYPE_CHECKING:
    from codexpc.constrain.matcher import SequenceMatcher


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


def sample_rows(logits: torch.Tensor, params: Sequence[SamplingParams], uniforms: Sequence[float],
                bitmask: torch.Tensor | None = None) -> torch.Tensor:
    """logits [B, V] -> one token id a row, int64 [B] on logits' device. Row b is greedy if its
    temperature is 0, else drawn with uniforms[b] from softmax(logits / temperature) cut to the
    top-p nucleus: the smallest set of the most likely tokens whose mass reaches top_p (the most
    likely token always stays).

    Nothing here waits for the GPU: the settings go over through pinned memory (a plain copy
    from a Python list would first drain the stream), and the distribution is left unnormalized
    (exp(x - max), then its cumulative sum: torch's softmax over one 201k row is one thread
    block, 49 us on an H100, bench/results/sampling_probe-h100.txt).

    `bitmask` (CPU int32 [B, W], from constraint_bitmask): the tokens each row may pick."""
    dev = logits.device
    if bitmask is not None:
        logits = apply_bitmask(logits, bitmask)
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


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator,
           matcher: SequenceMatcher | None = None) -> int:
    """logits [V] (any device) -> one token id (under the matcher's mask when given)."""
    bitmask = constraint_bitmask([matcher], logits.shape[-1])
    return int(sample_rows(logits[None], [params], [draw(params, generator)], bitmask)[0].item())


# ----- constrained rows -----

_BITS: dict[torch.device, torch.Tensor] = {}  # device -> uint8 [8]: 1, 2, 4, ... 128


def constraint_bitmask(matchers: Sequence[SequenceMatcher | None], vocab_size: int) -> torch.Tensor | None:
    """The rows' masks on the CPU (int32 [B, ceil(V / 32)], pinned), or None when no row is
    constrained. llguidance fills the rows in parallel, outside the GIL."""
    if all(m is None or not m.active for m in matchers):
        return None
    from codexpc.constrain.matcher import fill_bitmask, new_bitmask  # llguidance only when used

    bitmask = new_bitmask(len(matchers), vocab_size)
    fill_bitmask(matchers, bitmask)
    return bitmask


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """logits [B, V] with -inf where the row's bit is clear; the mask goes over as 1/32 of the
    logits' size and is expanded on the device, a byte at a time (8x less scratch than int32)."""
    dev = logits.device
    b, v = logits.shape
    if dev.type == "cpu":  # numpy unpacks bits several times faster than the tensor ops below
        bits8 = np.unpackbits(bitmask.numpy().view(np.uint8), axis=-1, count=v, bitorder="little")
        return logits.masked_fill(torch.from_numpy(bits8) == 0, float("-inf"))
    words = bitmask.to(dev, non_blocking=True)
    bits = _BITS.get(dev)
    if bits is None:
        bits = _BITS[dev] = torch.tensor([1 << i for i in range(8)], dtype=torch.uint8, device=dev)
    allowed = (words.view(torch.uint8)[:, :, None] & bits) != 0  # [B, W * 4, 8]: bit i of byte j is token 8j + i
    return logits.masked_fill(~allowed.view(b, -1)[:, :v], float("-inf"))
