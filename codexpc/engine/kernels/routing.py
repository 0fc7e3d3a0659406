"""The MoE router: its logits, then top-k and a softmax over the k chosen. The plain reference
(used by the plain model, the engine's reference path and the kernel tests alike) and the
dispatch to the Triton kernels (routing_triton.py, dense_gemv_triton.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from codexpc.engine.paged.kernel_plan import KernelPlan

# The GEMV's tiles for the router's logits: two logits a program, 16 programs a token at 32 experts.
ROUTER_TILES = (2, 1024, 4)


def route_reference(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [T, E] -> ids [T, k] int64 (best first), weights [T, k] fp32."""
    top = torch.topk(logits, k=k, dim=-1, sorted=True)
    # gpt-oss quirk: softmax over the k chosen logits only, not over all experts.
    return top.indices, torch.softmax(top.values.float(), dim=-1)


def router_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The router: x [T, H] -> logits [T, E] in x's dtype (the model's linear), then route_reference."""
    return route_reference(torch.nn.functional.linear(x, weight, bias), k)


def route(logits: torch.Tensor, k: int, pdl: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """route_reference in one Triton launch."""
    from codexpc.engine.kernels.routing_triton import launch_route  # needs triton

    return launch_route(logits, k, pdl)


def router(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int,
           plan: KernelPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """router_reference as `plan` runs it: the logits through our GEMV for decode batches (at batch
    1 cuBLAS spent a split-K GEMV and its reduction, about 6 us a layer, on a 32 x 2880 matmul),
    else cuBLAS; then the route kernel."""
    if not plan.kernels:
        return router_reference(x, weight, bias, k)
    if not plan.router_gemv(x.shape[0]):
        return route(torch.nn.functional.linear(x, weight, bias), k, plan.pdl)
    from codexpc.engine.kernels.dense_gemv_triton import launch_gemv  # needs triton

    return route(launch_gemv(x, weight, bias, ROUTER_TILES, plan.pdl), k, plan.pdl)
