"""Sampling under masks: the sampler honours them for greedy, sampled and mixed rows; sampled
custom-tool input (Codex's real apply_patch Lark grammar), structured final answers, and
arguments of generated JSON schemas are always valid. Completions come from the RANDOM-LOGITS
TEST DOUBLE in constrain_support, through the engine's masked sampler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import llguidance
import torch
from constrain_support import T1, VOCAB, random_logits_model, sample_completions, tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_harmony import HarmonyEncoding
from test_constrain_codex import check_well_formed, decode

from codexpc.constrain import FinalFormat, JsonBody, LarkBody, ToolConstraint, constraint_for
from codexpc.engine.api import SamplingParams
from codexpc.engine.sampling import sample_rows
from codexpc.harmony.events import MessageDone, ToolArgumentsDone
from codexpc.harmony.tools import Namespace, ToolRegistry, ToolSpec

# Codex's apply_patch grammar as Codex sends it on the wire (the `format.definition` of its custom
# tool): openai/codex, codex-rs/core/src/tools/handlers/tool_apply_patch.lark at 71163530a46d.
APPLY_PATCH = (Path(__file__).parent / "fixtures" / "codex-apply-patch" / "tool_apply_patch.lark").read_text()


def test_masked_rows_pick_only_allowed_tokens_and_unmasked_rows_are_untouched() -> None:
    from codexpc.constrain.matcher import new_bitmask

    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(0))
    bitmask = new_bitmask(4, VOCAB)
    allowed = [7, 1000, 200005]
    for row in (0, 1, 2):  # row 3 stays unconstrained
        bitmask[row].zero_()
        for t in allowed:
            bitmask[row, t // 32] |= 1 << (t % 32)
    greedy = SamplingParams(temperature=0.0)
    params = [greedy, T1, SamplingParams(temperature=0.7, top_p=0.5), T1]
    uniforms = [0.0, 0.3, 0.9, 0.42]
    tokens = sample_rows(logits, params, uniforms, bitmask).tolist()
    assert all(t in allowed for t in tokens[:3])
    assert tokens[0] == max(allowed, key=lambda t: float(logits[0, t]))  # greedy: the best allowed token
    assert tokens[3] == sample_rows(logits, params, uniforms).tolist()[3]  # no mask, no change
    assert sample_rows(logits[:1], [greedy], [0.0], bitmask[:1]).item() == tokens[0]  # batch size 1 too


def test_sampled_apply_patch_input_always_parses_with_its_grammar(encoding: HarmonyEncoding) -> None:
    tool = ToolConstraint("functions.apply_patch", "code", LarkBody(APPLY_PATCH), strict=True)
    constraint = constraint_for(ToolRegistry(), None, tokenizer(), tool_choice={"type": "custom", "name": "apply_patch"},
                                extra_tools=[tool])
    newline = tokenizer().tokenize_str("\n")

    def short_lines(rows: int, generator: torch.Generator) -> torch.Tensor:  # the double, with short lines
        logits = random_logits_model(rows, generator).clone()
        logits[:, newline] += 10.0
        return logits

    completions = sample_completions(constraint, 24, 160, seed=5, batch=24, model=short_lines)
    patches = [encoding.decode(c) for c in completions if c[-1] == 200012]
    assert len(patches) >= 6, len(patches)  # the rest reached the token limit mid-patch
    grammar = llguidance.LLMatcher.grammar_from_lark(APPLY_PATCH)
    for text in patches:
        body = text.rsplit("<|message|>", 1)[1].removesuffix("<|call|>")
        assert body.startswith("*** Begin Patch\n") and "*** End Patch" in body
        alone = llguidance.LLMatcher(tokenizer(), grammar, log_level=0)  # the grammar alone, on fresh tokens
        assert alone.consume_tokens(tokenizer().tokenize_str(body)) and alone.is_accepting(), body


def test_a_json_schema_text_format_yields_a_final_answer_that_validates(encoding: HarmonyEncoding) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"},
                                               "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
              "required": ["answer", "confidence"], "additionalProperties": False}
    final = FinalFormat(JsonBody(schema), "out", strict=True)
    registry = ToolRegistry()
    constraint = constraint_for(registry, final, tokenizer())
    completions = sample_completions(constraint, 24, 200, seed=9, batch=24)
    answers = 0
    for tokens in completions:
        events = decode(encoding, registry, tokens, 200)
        check_well_formed(events)
        for done in (e for e in events if isinstance(e, MessageDone) and e.kind == "final"):
            jsonschema.validate(json.loads(done.text), schema)
            answers += 1
    assert answers >= 12, answers


# ----- generated JSON schemas -----

_leaf = st.one_of(
    st.just({"type": "string"}), st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-50, 50), st.integers(0, 100)),
    st.just({"type": "number"}),
    st.lists(st.one_of(st.text("abc_", min_size=1, max_size=4), st.integers(0, 9)), min_size=1, max_size=4,
             unique=True).map(lambda values: {"enum": values}),
    st.just({"$ref": "#/$defs/point"}),
)
_names = st.text("abcdefgh", min_size=1, max_size=5)


def _extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    objects = st.dictionaries(_names, inner, min_size=1, max_size=3).flatmap(lambda props: st.builds(
        lambda required, extra: {"type": "object", "properties": props, "required": required,
                                 "additionalProperties": extra},
        st.lists(st.sampled_from(sorted(props)), unique=True), st.booleans()))
    arrays = st.builds(lambda items, lo, span: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + span},
                       inner, st.integers(0, 2), st.integers(0, 2))
    return st.one_of(objects, arrays)


SCHEMAS = st.recursive(_leaf, _extend, max_leaves=6).map(lambda root: {
    "type": "object", "properties": {"value": root}, "required": ["value"],
    "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMAS)
def test_sampled_arguments_of_generated_schemas_always_validate(encoding: HarmonyEncoding,
                                                               schema: dict[str, Any]) -> None:
    registry = ToolRegistry([Namespace("functions", "", (ToolSpec("functions", "f", "", schema),))])
    constraint = constraint_for(registry, None, tokenizer(), tool_choice="required")
    for tokens in sample_completions(constraint, 4, 120, seed=len(json.dumps(schema)), batch=4):
        events = decode(encoding, registry, tokens, 120)
        check_well_formed(events)  # ToolArgumentsDone validated by the registry's jsonschema
        for call in (e for e in events if isinstance(e, ToolArgumentsDone)):
            jsonschema.validate(json.loads(call.arguments), schema)
