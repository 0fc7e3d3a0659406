"""OpenAI's published OpenAPI description (../shared/specs/openai-openapi.json) as a JSON-schema
validator: `validate("Response", obj)` checks one object against a named component schema, its
$refs resolved inside the document. Tests that use it skip where the file is absent."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / ".." / "shared" / "specs" / "openai-openapi.json"
_ROOT = "urn:openai-openapi"


def spec_or_skip() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.skip(f"OpenAI's published description is absent ({SPEC_PATH})")
    return _spec()


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return spec


@cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(_ROOT, Resource.from_contents(_spec(), default_specification=DRAFT202012))


@cache
def validator(schema_name: str) -> Draft202012Validator:
    spec_or_skip()
    ref = {"$ref": f"{_ROOT}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_registry())


def errors(schema_name: str, instance: Any) -> list[str]:
    """Every violation, each as 'path: message' (an empty list: the object conforms)."""
    found = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in found]


def validate(schema_name: str, instance: Any) -> None:
    problems = errors(schema_name, instance)
    assert not problems, f"not a valid {schema_name}:\n" + "\n".join(problems[:20])


@cache
def stream_event_schemas() -> dict[str, str]:
    """Each published stream event's `type` -> the name of its schema (ResponseStreamEvent's members)."""
    schemas = spec_or_skip()["components"]["schemas"]
    names: dict[str, str] = {}
    for member in schemas["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[-1]
        for event_type in schemas[name].get("properties", {}).get("type", {}).get("enum", []):
            names[event_type] = name
    return names
