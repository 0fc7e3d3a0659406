"""The kernel plan: what it picks at each token count, and the architecture page's table of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from codexpc.engine.model_config import GPT_OSS_20B, TINY
from codexpc.engine.paged.kernel_plan import REFERENCE, KernelPlan, default_plan, kernel_table, markdown

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_the_moe_kernel_follows_the_token_count_for_the_20b() -> None:
    plan, e, k = KernelPlan(), GPT_OSS_20B.num_experts, GPT_OSS_20B.experts_per_token
    assert [plan.moe_kernel(t, e, k) for t in (1, 8, 9, 4095, 4096, 8192)] == [
        "gemv", "gemv", "scaled", "scaled", "dense_rows", "dense_rows"]
    assert plan.moe_dense_min_tokens(GPT_OSS_20B) == 4096
    assert plan.linear_gemv(1) and not plan.linear_gemv(2)
    assert plan.router_gemv(128) and not plan.router_gemv(129)


def test_the_reference_plan_runs_no_kernel() -> None:
    assert not REFERENCE.linear_gemv(1) and not REFERENCE.router_gemv(1)
    assert not (REFERENCE.cuda_graphs or REFERENCE.run_ahead or REFERENCE.pdl)
    assert default_plan(torch.device("cpu")) == REFERENCE


def test_a_plan_is_frozen_and_varied_by_replace() -> None:
    plan = KernelPlan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.run_ahead = False  # type: ignore[misc]
    assert dataclasses.replace(plan, moe_gemv_max_tokens=4).moe_kernel(5, 32, 4) == "scaled"


def test_the_table_follows_the_plan() -> None:
    moe = [r for r in kernel_table(KernelPlan(moe_gemv_max_tokens=16), TINY) if r.operation == "MoE experts"]
    assert [r.tokens for r in moe] == ["1-16", f"17-{KernelPlan().moe_dense_min_tokens(TINY) - 1}",
                                       f"{KernelPlan().moe_dense_min_tokens(TINY)}+"]


def test_the_architecture_page_shows_the_engines_table() -> None:
    assert markdown(kernel_table(KernelPlan(), GPT_OSS_20B)) in ARCHITECTURE.read_text()
