"""Speculative decoding under a grammar constraint (the paged engine on the CPU, the copying
tiny model of test_speculative_engine.py): drafts are cut to what the grammar allows, every
verify row is masked with the grammar's state after the drafts before it, and the matcher moves
past exactly the tokens kept. Greedy tokens are then identical with and without speculation."""

from __future__ import annotations

import re

import llguidance
from constrain_support import tokenizer
from openai_harmony import HarmonyEncoding
from test_speculative_engine import CYCLE, LOOPING, SPEC, engine, model, run  # noqa: F401  (fixture)

from codexpc.constrain import Constraint
from codexpc.engine.api import SamplingParams
from codexpc.engine.model import Transformer

FORBIDDEN = 3000  # the loop's third token: the grammar refuses its text, so drafts of it are cut


def loop_grammar(encoding: HarmonyEncoding) -> Constraint:
    """Any repetition of the loop's token texts but FORBIDDEN's."""
    texts = [encoding.decode([t]) for t in CYCLE if t != FORBIDDEN]
    lark = "start: /(" + "|".join(re.escape(t) for t in texts) + ")*/\n"
    return Constraint(llguidance.LLMatcher.grammar_from_lark(lark), tokenizer())


async def test_greedy_constrained_tokens_are_identical_with_and_without_drafts(
        model: Transformer, encoding: HarmonyEncoding) -> None:  # noqa: F811
    constraint = loop_grammar(encoding)
    params = SamplingParams(temperature=0.0, max_new_tokens=40, constraint=constraint)
    plain = engine(model, None)
    expected, _ = await run(plain, LOOPING, params, "plain")
    await plain.close()
    spec = engine(model, SPEC)
    got, _ = await run(spec, LOOPING, params, "spec")
    stats = spec.stats()
    await spec.close()
    assert got == expected
    assert FORBIDDEN not in got
    assert stats["spec_drafted_tokens"] > 0 and stats["spec_accepted_tokens"] > 0, stats
    # What the grammar allows, as the matcher sees it: the whole output is in its language.
    check = constraint.start()
    assert check.valid_prefix(got) == len(got)


async def test_a_matcher_ends_a_draft_where_it_began(encoding: HarmonyEncoding) -> None:
    constraint = loop_grammar(encoding)
    matcher = constraint.start()
    draft = [1000, 2000, FORBIDDEN, 4000]
    assert matcher.valid_prefix(draft) == 2
    masks = matcher.masks_along(draft[:2], tokenizer().vocab_size)
    assert masks is not None and masks.shape[0] == 3
    assert matcher.valid_prefix(draft) == 2  # rolled back: the same answer from the same place
    for row in range(3):  # FORBIDDEN's bit is clear in every row, 1000's set
        word = masks[row]
        assert not (int(word[FORBIDDEN // 32]) >> (FORBIDDEN % 32)) & 1
        assert (int(word[1000 // 32]) >> (1000 % 32)) & 1
