"""Acceptance: greedy keeps exactly greedy's tokens; sampled keeps the model's distribution."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from codexpc.engine.api import SamplingParams
from codexpc.engine.sampling import sample_rows
from codexpc.engine.speculative.acceptance import accept, accept_greedy, accept_sampled, target_probs

GREEDY = SamplingParams(temperature=0.0)
T1 = SamplingParams(temperature=1.0)
# Upper 0.1% points of chi-square (scipy.stats.chi2.ppf(0.999, df)): a correct sampler fails a
# seeded test with probability 1e-3, and the seeds below are fixed.
CHI2_999 = {5: 20.515, 8: 26.124}
TRIALS = 12000


def rows(*probs: list[float]) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64)).float()  # logits whose softmax is probs


def test_greedy_accepts_the_longest_prefix_that_matches_the_argmax() -> None:
    logits = torch.eye(6)[[3, 4, 1, 5]] * 5  # argmaxes 3 4 1 5
    n, token = accept_greedy(logits, torch.tensor([3, 4, 2]))
    assert (int(n), int(token)) == (2, 1)  # 3 4 kept; the model says 1 where the draft said 2
    n, token = accept_greedy(logits, torch.tensor([3, 4, 1]))
    assert (int(n), int(token)) == (3, 5)  # all kept, then the bonus token
    n, token = accept_greedy(logits, torch.tensor([0, 4, 1]))
    assert (int(n), int(token)) == (0, 3)


def test_accept_takes_python_lists_and_a_point_mass_is_always_kept() -> None:
    logits = torch.eye(4)[[2, 2, 0]] * 100  # p(2) = 1 on the first rows
    n, token = accept(logits, [2, 2], T1, [0.999, 0.999, 0.5])
    assert (int(n), int(token)) == (2, 0)
    n, token = accept(logits, [1, 2], GREEDY, [])
    assert (int(n), int(token)) == (0, 2)


def test_a_rejection_draws_from_p_without_the_rejected_token() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], dtype=torch.float64)
    # u = 0.6 >= p(0) = 0.5: rejected; the residual is [0, .25, .25] / .5, and u' = 0.75 picks 2.
    n, token = accept_sampled(probs, torch.tensor([0]), torch.tensor([0.6, 0.75], dtype=torch.float64))
    assert (int(n), int(token)) == (0, 2)
    n, token = accept_sampled(probs, torch.tensor([0]), torch.tensor([0.4, 0.05], dtype=torch.float64))
    assert (int(n), int(token)) == (1, 0)  # kept; the bonus row's u' = 0.05 picks 0


def test_target_probs_apply_temperature_and_the_top_p_nucleus() -> None:
    logits = rows([0.5, 0.3, 0.2])
    assert torch.allclose(target_probs(logits, T1), torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64))
    cut = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.7))
    assert torch.allclose(cut, torch.tensor([[0.625, 0.375, 0.0]], dtype=torch.float64))
    hot = target_probs(logits, SamplingParams(temperature=0.5))  # p^2 renormalised
    expected = torch.tensor([0.25, 0.09, 0.04], dtype=torch.float64) / 0.38
    assert torch.allclose(hot[0], expected)


@pytest.mark.parametrize("params", [T1, SamplingParams(temperature=0.7, top_p=0.8)])
def test_target_probs_are_the_distribution_sample_rows_draws_from(params: SamplingParams) -> None:
    """sample_rows at evenly spaced uniforms lands on each token as often as its probability."""
    torch.manual_seed(0)
    logits = torch.randn(1, 12) * 2
    n = 20000
    uniforms = [(i + 0.5) / n for i in range(n)]
    drawn = sample_rows(logits.expand(n, -1), [params] * n, uniforms)
    freq = torch.bincount(drawn, minlength=12).double() / n
    assert torch.allclose(freq, target_probs(logits, params)[0], atol=2 / n)


def _chi2(counts: Counter[int], probs: list[float], total: int) -> tuple[float, int]:
    stat = sum((counts.get(t, 0) - total * p) ** 2 / (total * p) for t, p in enumerate(probs) if p > 0)
    return stat, sum(1 for p in probs if p > 0) - 1


@pytest.mark.parametrize("drafted", [0, 2, 5])  # the likeliest, a middling and the least likely token
def test_at_temperature_1_the_first_token_has_the_models_distribution(drafted: int) -> None:
    p = [0.35, 0.05, 0.2, 0.15, 0.2, 0.05]
    probs = target_probs(rows(p, [1 / 6] * 6), T1)
    uniforms = torch.rand(TRIALS, 2, generator=torch.Generator().manual_seed(1000 + drafted), dtype=torch.float64)
    draft = torch.tensor([drafted])
    total = TRIALS
    counts: Counter[int] = Counter()
    for u in uniforms:
        n, token = accept_sampled(probs, draft, u)
        counts[drafted if int(n) == 1 else int(token)] += 1
    stat, df = _chi2(counts, p, total)
    assert stat < CHI2_999[df], (stat, counts)


def test_at_temperature_1_two_tokens_have_the_models_joint_distribution() -> None:
    """Draft [a, b] against rows whose second distribution depends on nothing (a synthetic model
    where the second token is independent of the first): each (first, second) pair must come out
    with probability p1(first) * p2(second), whichever path (accept, reject, bonus) made it."""
    p1 = [0.5, 0.3, 0.2]
    p2 = [0.1, 0.6, 0.3]
    total = TRIALS
    generator = torch.Generator().manual_seed(7)
    probs = target_probs(rows(p1, p2, p2), T1)
    draft = torch.tensor([1, 2])
    uniforms = torch.rand(total, 4, generator=generator, dtype=torch.float64)
    cdf2 = torch.tensor(p2, dtype=torch.float64).cumsum(0)
    counts: Counter[int] = Counter()
    for u in uniforms:
        n, token = accept_sampled(probs, draft, u[:3])
        out = [1, 2][: int(n)] + [int(token)]
        if len(out) == 1:  # the first token was rejected: the second comes from a plain draw
            out.append(int(torch.searchsorted(cdf2, u[3:4], right=True)[0]))
        counts[out[0] * 3 + out[1]] += 1
    joint = [a * b for a in p1 for b in p2]
    stat, df = _chi2(counts, joint, total)
    assert stat < CHI2_999[df], (stat, counts)


def test_a_token_outside_the_nucleus_is_never_accepted() -> None:
    params = SamplingParams(temperature=1.0, top_p=0.5)
    logits = rows([0.6, 0.3, 0.1], [0.6, 0.3, 0.1])
    for u in (0.0, 0.3, 0.99):
        n, token = accept(logits, [2], params, [u, 0.5])
        assert (int(n), int(token)) == (0, 0)  # the nucleus is {0}; the residual is all on 0
    assert not math.isnan(float(target_probs(logits, params).sum()))
