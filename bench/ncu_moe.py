"""A few eager MoE launches for Nsight Compute to read (no timing here: ncu measures).

The engine's kernels at 1 and 64 tokens (the GEMV pair with its portable decode, then its PTX;
the scaled dot), eagerly:

    ncu --kernel-name regex:"gemv|scaled|moe_up|moe_down" --launch-skip 8 --launch-count 16 \
        --section SpeedOfLight --section WarpStateStats --section Occupancy python bench/ncu_moe.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import random_experts  # noqa: E402
from bench.fast_engine_parts import DEV  # noqa: E402
from codexpc.engine.kernels.moe_mxfp4 import moe_mxfp4_slots  # noqa: E402
from codexpc.engine.model_config import GPT_OSS_20B as CONFIG  # noqa: E402
from codexpc.engine.paged.kernel_plan import KernelPlan  # noqa: E402

w = random_experts(CONFIG)
for t in (1, 64):
    x = torch.randn(t, CONFIG.hidden_size, device=DEV, dtype=torch.bfloat16)
    ids = torch.stack([torch.randperm(CONFIG.num_experts, device=DEV)[:4] for _ in range(t)])
    wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
    for plan in (KernelPlan(moe_gemv_asm=False), KernelPlan()):  # the GEMV's portable decode, then its PTX
        for _ in range(3):
            moe_mxfp4_slots(x, ids, wts, w, plan)
torch.cuda.synchronize()
