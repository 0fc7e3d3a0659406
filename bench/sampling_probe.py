"""What one sampled token costs on the GPU: the engine's sampler and alternatives, gpt-oss's vocabulary.

    python bench/sampling_probe.py

For batch 1 and 8 rows of fp32 logits over 201,088 tokens: the latency of one call up to its
result on the host (what a decode step pays: it waits for its tokens), and the GPU time of
back-to-back calls (CUDA events), for greedy, the engine's
sampling.sample_rows at temperature 1 with and without top-p, and two candidate inverse-CDF
layouts: the cumulative sum in float32, and in two levels (sums of 1,024-token chunks, then
within the chosen chunk). Prints one table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codexpc.engine.api import SamplingParams  # noqa: E402
from codexpc.engine.sampling import sample_rows  # noqa: E402

V = 201_088
CHUNK = 1024


def inverse_cdf_f32(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    cdf = torch.cumsum(probs, dim=-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).clamp_(max=probs.shape[-1] - 1)[:, 0]


def inverse_cdf_two_level(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    b, v = probs.shape
    pad = (-v) % CHUNK
    p = torch.nn.functional.pad(probs, (0, pad)).view(b, -1, CHUNK).double()  # [B, R, C]
    sums = p.sum(dim=-1)  # [B, R]
    cum = torch.cumsum(sums, dim=-1)
    target = u.double() * cum[:, -1]
    r = torch.searchsorted(cum, target[:, None], right=True).clamp_(max=cum.shape[-1] - 1)  # [B, 1]
    before = torch.where(r > 0, cum.gather(-1, (r - 1).clamp(min=0)), 0.0)  # mass of the chunks before
    inner = torch.cumsum(p.gather(1, r[:, :, None].expand(b, 1, CHUNK))[:, 0], dim=-1)  # [B, C]
    j = torch.searchsorted(inner, (target[:, None] - before), right=True).clamp_(max=CHUNK - 1)
    return (r * CHUNK + j)[:, 0].clamp_(max=v - 1)


def time_it(fn: Callable[[], object], n: int = 200) -> tuple[float, float]:
    """-> (µs from the call to its result on the host, GPU µs a call back to back)."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
        torch.cuda.synchronize()
    latency = (time.perf_counter() - t0) / n * 1e6
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return latency, start.elapsed_time(end) / n * 1e3


def main() -> int:
    dev = torch.device("cuda")
    lines = []
    for b in (1, 8):
        logits = torch.randn(b, V, device=dev) * 3
        t1 = [SamplingParams(temperature=1.0)] * b
        nucleus = [SamplingParams(temperature=1.0, top_p=0.9)] * b
        greedy = [SamplingParams(temperature=0.0)] * b
        u = [0.37] * b
        probs = torch.softmax(logits, dim=-1)
        ut = torch.full((b,), 0.37, device=dev)
        ref = sample_rows(logits, t1, u)
        assert torch.equal(inverse_cdf_two_level(probs, ut), ref), "two-level picks another token"
        cases = {
            "greedy (sample_rows)": lambda: sample_rows(logits, greedy, u),  # noqa: B023
            "temperature 1 (sample_rows)": lambda: sample_rows(logits, t1, u),  # noqa: B023
            "temperature 1, top_p 0.9 (sample_rows)": lambda: sample_rows(logits, nucleus, u),  # noqa: B023
            "softmax alone": lambda: torch.softmax(logits, dim=-1),  # noqa: B023
            "inverse CDF, float64 cumsum": lambda: torch.cumsum(probs.double(), dim=-1),  # noqa: B023
            "inverse CDF, float32 cumsum + search": lambda: inverse_cdf_f32(probs, ut),  # noqa: B023
            "inverse CDF, two levels in float64": lambda: inverse_cdf_two_level(probs, ut),  # noqa: B023
        }
        for name, fn in cases.items():
            latency, gpu = time_it(fn)
            lines.append(f"B={b:<2} {name:<42} latency {latency:7.1f} us   GPU back to back {gpu:7.1f} us")
            print(lines[-1], flush=True)
    print(f"# {torch.cuda.get_device_name()}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
