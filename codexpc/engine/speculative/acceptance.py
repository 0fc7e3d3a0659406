"""Which drafted tokens the model keeps: one sequence's verify rows -> its accepted tokens.

A verify step gives d + 1 rows of logits for a sequence with d drafted tokens: row j is the
model's distribution for the token after draft[:j]. The output is the accepted drafts and one
more token from the model (a correction on the first rejection, else a bonus), so every verify
step yields 1 to d + 1 tokens.

- Greedy: accept while the row's argmax equals the draft; the next token is that row's argmax.
  The tokens are exactly those greedy decoding gives one step at a time.
- Sampled: standard speculative sampling for a deterministic draft (the draft distribution q is
  a point mass on t). Accept t with probability min(1, p(t) / q(t)) = p(t); on a rejection draw
  from the residual max(0, p - q) normalised, which is p with t removed. Each emitted token then
  has exactly the model's distribution p (after temperature and top-p); the test at temperature
  1 checks it with a chi-square.

Everything stays on the device; the caller copies the counts and tokens back once a step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from codexpc.engine.api import SamplingParams


def target_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """logits [R, V] -> float64 probabilities [R, V] after temperature and the top-p nucleus:
    the same rule as sampling.sample_rows (the smallest set of the most likely tokens whose mass
    reaches top_p; the most likely always stays), so a verified token and a plainly sampled one
    come from one distribution."""
    assert params.temperature > 0
    x = logits.double() / params.temperature
    weights = torch.exp(x - x.max(dim=-1, keepdim=True).values)  # [R, V], unnormalised
    if params.top_p < 1.0:
        ranked, ids = torch.sort(weights, dim=-1, descending=True)
        before = torch.cumsum(ranked, dim=-1) - ranked  # mass ranked above each token
        keep = before < params.top_p * ranked.sum(dim=-1, keepdim=True)
        keep[:, 0] = True
        weights = torch.zeros_like(weights).scatter_(-1, ids, torch.where(keep, ranked, 0.0))
    return weights / weights.sum(dim=-1, keepdim=True)


def accept_greedy(logits: torch.Tensor, draft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [d+1, V], draft [d] int64 -> (accepted count, the next token), 0-d tensors."""
    best = logits.argmax(dim=-1)  # [d+1]
    n = _leading_true(best[:-1] == draft)
    return n, best[n]


def accept_sampled(probs: torch.Tensor, draft: torch.Tensor, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """probs [d+1, V] (rows sum to 1), draft [d], uniforms [d+1] float64 in [0, 1) -> (accepted
    count, the next token). uniforms[j] decides draft[j]; uniforms[d] draws the last token."""
    d = draft.shape[0]
    p_draft = probs[:-1].gather(-1, draft[:, None])[:, 0]  # [d] p_j(draft_j)
    n = _leading_true(uniforms[:d] < p_draft)
    row = probs[n]  # [V]: the first rejected row, or the bonus row when n == d
    drafted = torch.cat([draft, draft.new_full((1,), -1)])[n]  # the rejected token, -1 for the bonus
    vocab = torch.arange(row.shape[0], device=row.device)
    residual = torch.where(vocab == drafted, 0.0, row)  # p with the rejected token removed
    cdf = torch.cumsum(residual, dim=0)
    token = torch.searchsorted(cdf, (uniforms[d] * cdf[-1])[None], right=True).clamp_(max=row.shape[0] - 1)[0]
    return n, token


def accept(logits: torch.Tensor, draft: Sequence[int], params: SamplingParams,
           uniforms: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence's verify rows [d+1, V] -> (accepted count, next token) on the logits' device.
    `uniforms` has d + 1 numbers for a sampled sequence (sampling.draw), none for a greedy one."""
    dev = logits.device
    ids = torch.tensor(list(draft), dtype=torch.int64).to(dev, non_blocking=True)
    if params.temperature == 0:
        return accept_greedy(logits, ids)
    assert len(uniforms) == len(draft) + 1
    u = torch.tensor(list(uniforms), dtype=torch.float64).to(dev, non_blocking=True)
    return accept_sampled(target_probs(logits, params), ids, u)


def _leading_true(flags: torch.Tensor) -> torch.Tensor:
    """How many of the first flags are all true (0-d int64), without a copy to the host."""
    return flags.long().cumprod(dim=0).sum() if flags.numel() else flags.new_zeros((), dtype=torch.long)
