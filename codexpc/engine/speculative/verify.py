"""A verify step's logits -> each sequence's tokens (model_runner.ModelRunner.verify calls it).

The step is an ordinary paged forward in which a drafting sequence brings 1 + d tokens (its
last sampled token and d drafted ones: a prefill of d + 1 tokens on its cached prefix) and keeps
the logits of all of them; sequences without a draft keep one row as in any step. Those are
sampled together as usual (sampling.sample_rows); each drafting sequence goes through
acceptance.accept. One copy back to the host for the whole step.

Constrained sequences (SamplingParams.constraint): their drafts were cut to what the grammar
allows (scheduler), and each verify row is masked with the grammar's state after the drafts
before it (SequenceMatcher.masks_along), so acceptance sees exactly the distributions plain
constrained decoding would sample from, one step at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from codexpc.engine.api import SamplingParams
from codexpc.engine.sampling import apply_bitmask, constraint_bitmask, draw, sample_rows
from codexpc.engine.speculative import acceptance

if TYPE_CHECKING:
    from codexpc.constrain.matcher import SequenceMatcher


class Sampler(Protocol):
    """What this module reads of a sequence (paged.sequence.Sequence)."""

    @property
    def request_id(self) -> str: ...

    @property
    def params(self) -> SamplingParams: ...

    @property
    def matcher(self) -> SequenceMatcher | None: ...


def split_verify_logits(logits: torch.Tensor, samplers: Sequence[Sampler], drafts: Sequence[Sequence[int]],
                        generators: dict[str, torch.Generator]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """logits [R, V]: one row per sampler without a draft, d + 1 per sampler with d drafted
    tokens, in `samplers` order. -> (sampled: request id -> token for samplers without a draft,
    verified: request id -> accepted drafts + the model's next token)."""
    plain_rows: list[int] = []
    plain: list[Sampler] = []
    checks: list[tuple[Sampler, list[int], torch.Tensor, torch.Tensor]] = []
    row = 0
    for seq, draft in zip(samplers, drafts, strict=True):
        rid = seq.request_id
        params = seq.params
        if not draft:
            plain_rows.append(row)
            plain.append(seq)
            row += 1
            continue
        d = len(draft)
        uniforms = [draw(params, generators.get(rid)) for _ in range(d + 1)] if params.temperature > 0 else []
        rows = logits[row : row + d + 1]
        masks = seq.matcher.masks_along(draft, logits.shape[-1]) if seq.matcher is not None else None
        if masks is not None:  # constrained: each row under the grammar's state after draft[:j]
            rows = apply_bitmask(rows, masks)
        n, token = acceptance.accept(rows, draft, params, uniforms)
        checks.append((seq, list(draft), n, token))
        row += d + 1
    assert row == logits.shape[0], (row, logits.shape)
    parts: list[torch.Tensor] = []
    if plain:
        params_list = [s.params for s in plain]
        uniforms = [draw(p, generators.get(s.request_id)) for s, p in zip(plain, params_list, strict=True)]
        bitmask = constraint_bitmask([s.matcher for s in plain], logits.shape[-1])
        parts.append(sample_rows(logits[plain_rows], params_list, uniforms, bitmask))
    for _, _, n, token in checks:
        parts.append(torch.stack([n, token]))
    values = torch.cat(parts).tolist() if parts else []  # the step's one copy back
    sampled = {s.request_id: t for s, t in zip(plain, values[: len(plain)], strict=True)}
    verified: dict[str, list[int]] = {}
    rest = values[len(plain) :]
    for i, (seq, draft, _, _) in enumerate(checks):
        n, token = rest[2 * i], rest[2 * i + 1]
        verified[seq.request_id] = draft[:n] + [token]
    return sampled, verified
