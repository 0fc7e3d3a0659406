"""Programmatic dependent launch (Hopper and later) for the kernels of a decode step.

A batch-1 decode step of the 20b is about 290 kernels of 2 to 30 us each. Launched plainly, each
starts only after the one before has finished and the launch has gone through: its programs
then ramp up from nothing while the last programs of the one before run out. With the launch
attribute (H100, the step's graph alone: 2.22 -> 2.03 ms; with the GEMVs' weights loaded before
the wait, 1.94; bench/results/moe_gemv_probe-v6b-h100.txt), the next kernel's programs are
placed on the SMs as soon as every program of the one before has signalled
(`gdc_launch_dependents`), and wait in `gdc_wait` until it has finished and its writes are
visible.

The rules each kernel launched this way keeps:
- `gdc_wait` comes before any store and before any load of what the kernel just before wrote.
  Then a kernel that finishes implies that the one before it had finished, and so on down the
  chain, whichever kernels in it were launched plainly.
- It signals only after its own wait (`wait_for_inputs`), so its successor's programs are placed
  only once the kernel two before it has finished: what that one wrote may be read before
  waiting, from L2 (`.cg`: an SM's L1 is not kept coherent). The MoE's down GEMV reads the
  router's expert ids so, and starts loading its weights while the up GEMV finishes.
- Weights and other data no kernel of the step writes may be read before waiting.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@functools.cache
def _supported(device: int) -> bool:
    return torch.cuda.get_device_capability(device) >= (9, 0)


def launch_args(x: torch.Tensor, enabled: bool) -> dict[str, bool]:
    """The launch's extra arguments: PDL for the kernel's constexpr and Triton's launch_pdl, when
    the plan enables it (KernelPlan.pdl) while a CUDA graph is being captured on a GPU that has it
    (sm_90+); else none (the kernel's
    PDL defaults to False). Launched one by one from Python, kernels wait on the host, not on
    each other, and the launch attribute only costs time there."""
    if (enabled and x.is_cuda and torch.cuda.is_current_stream_capturing()
            and _supported(x.device.index if x.device.index is not None else 0)):
        return {"PDL": True, "launch_pdl": True}
    return {}


@triton.jit
def wait_for_inputs(PDL: tl.constexpr):
    """Wait until the kernel before has finished, then let the next kernel's programs be placed."""
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
