"""check_responses_body: every enum and range of a Responses body refused with a 400 naming the
parameter, Codex's real bodies accepted, and the tables kept equal to OpenAI's published spec."""

from __future__ import annotations

from typing import Any

import published_spec
import pytest

from codexpc.errors import RequestError
from codexpc.server import request_table as table
from codexpc.server.request_checks import check_responses_body


@pytest.mark.parametrize(("extra", "param"), [
    ({"reasoning": {"summary": "AAA"}}, "reasoning.summary"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"reasoning": "high"}, "reasoning"),
    ({"tools": [{"type": {}}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "f"}, {"type": "teleport"}]}, "tools[1].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "strict": "yes"}]}, "tools[0].strict"),
    ({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": 3}]}]}, "tools[0].tools[0].type"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"top_logprobs": -1}, "top_logprobs"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 1.5}, "top_logprobs"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": True}, "top_p"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_tool_calls": -1}, "max_tool_calls"),
    ({"truncation": "sometimes"}, "truncation"),
    ({"service_tier": "gold"}, "service_tier"),
    ({"prompt_cache_retention": "forever"}, "prompt_cache_retention"),
    ({"tool_choice": "always"}, "tool_choice"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.name"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"text": {"verbosity": "loud"}}, "text.verbosity"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema"}}}, "text.format"),
    ({"include": ["everything"]}, "include[0]"),
    ({"include": "reasoning.encrypted_content"}, "include"),
    ({"store": "yes"}, "store"),
    ({"background": 1}, "background"),
    ({"previous_response_id": 7}, "previous_response_id"),
    ({"safety_identifier": "x" * 65}, "safety_identifier"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"instructions": 5}, "instructions"),
    ({"conversation": "conv_1", "previous_response_id": "resp_1"}, "previous_response_id"),
])
def test_a_bad_value_is_a_400_naming_its_parameter(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        check_responses_body({"input": "hi", **extra})
    assert caught.value.param == param and caught.value.http_status == 400
    assert param.split("[")[0].split(".")[0] in str(caught.value)


@pytest.mark.parametrize("extra", [
    {}, {"reasoning": {"effort": "high", "summary": "auto"}}, {"reasoning": None}, {"top_logprobs": 0},
    {"tool_choice": {"type": "function", "name": "f"}}, {"tool_choice": "required"},
    {"text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}, "verbosity": "low"}},
    {"include": ["reasoning.encrypted_content"]}, {"store": False, "truncation": "disabled", "service_tier": "auto"},
    {"metadata": {"a": "b"}, "max_output_tokens": 1, "temperature": 0, "top_p": 1},
    {"tools": [{"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}]},
])
def test_valid_bodies_pass(extra: dict[str, Any]) -> None:
    check_responses_body({"input": "hi", **extra})


def test_real_codex_bodies_pass(codex_turn1_request: dict[str, Any], codex_turn2_request: dict[str, Any]) -> None:
    check_responses_body(codex_turn1_request)
    check_responses_body(codex_turn2_request)


def _flat_properties(schemas: dict[str, Any], name: str) -> dict[str, Any]:
    schema, out = schemas[name], {}
    for part in schema.get("allOf", [schema]):
        out.update(_flat_properties(schemas, part["$ref"].rsplit("/", 1)[-1]) if "$ref" in part
                   else part.get("properties", {}))
    return out


def _string_enum(schemas: dict[str, Any], schema: dict[str, Any]) -> tuple[str, ...]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    for branch in schema.get("anyOf", schema.get("oneOf", [schema])):
        while "$ref" in branch:
            branch = schemas[branch["$ref"].rsplit("/", 1)[-1]]
        if "enum" in branch:
            return tuple(branch["enum"])
    return ()


def test_the_tables_match_the_published_spec() -> None:
    schemas = published_spec.spec_or_skip()["components"]["schemas"]
    props = _flat_properties(schemas, "CreateResponse")
    for key in ("truncation", "service_tier", "prompt_cache_retention"):
        assert table.ENUMS[key] == _string_enum(schemas, props[key]), key
    assert table.ENUMS["tool_choice"] == _string_enum(schemas, schemas["ToolChoiceOptions"])
    reasoning = schemas["Reasoning"]["properties"]
    for key in ("effort", "summary", "generate_summary"):
        assert table.ENUMS[f"reasoning.{key}"] == _string_enum(schemas, reasoning[key]), key
    assert table.ENUMS["text.verbosity"] == _string_enum(schemas, schemas["Verbosity"])
    assert table.ENUMS["include[]"] == _string_enum(schemas, schemas["IncludeEnum"])
    formats = [schemas[r["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["enum"][0]
               for r in schemas["TextResponseFormatConfiguration"]["oneOf"]]
    assert table.ENUMS["text.format.type"] == tuple(formats)
    tool_types = [t for r in schemas["Tool"]["oneOf"]
                  for t in schemas[r["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["enum"]]
    assert table.ENUMS["tools[].type"] == tuple(tool_types)
    for key, (low, high) in table.RANGES.items():
        numeric = [b for b in props[key].get("anyOf", [props[key]]) if b.get("type") in ("integer", "number")]
        spec_low, spec_high = numeric[0].get("minimum"), numeric[0].get("maximum")
        if key in table.DEVIATIONS:  # knowingly wider; the row says so
            assert (low, high) != (spec_low, spec_high), f"{key}: the deviation is gone, drop it"
            continue
        assert (low, high) == (spec_low, spec_high), key
        assert (key in table.INTEGERS) == (numeric[0]["type"] == "integer"), key
    assert table.MAX_LENGTHS["safety_identifier"] == props["safety_identifier"]["anyOf"][0]["maxLength"]
