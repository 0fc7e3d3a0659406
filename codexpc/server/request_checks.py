"""Every enum, range and type of a Responses request body, checked in one pure function.

`check_responses_body(body)` returns nothing for a body the published API accepts and raises
RequestError naming the parameter (`reasoning.summary`, `tools[2].type`, ...) for the first one
it refuses, as OpenAI's service does with its 400s. The tables are in request_table.py; the
input items and tool schemas are the renderer's to check (it reads them anyway).
null means "not given" throughout, as in the API (its SDKs send it for unset options).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from codexpc.errors import RequestError
from codexpc.server import request_table as table


def check_responses_body(body: Mapping[str, Any]) -> None:
    for key in table.BOOLEANS:
        _kind(body, key, bool, "a boolean")
    for key in table.STRINGS:
        _kind(body, key, str, "a string")
    for key in table.OBJECTS:
        _kind(body, key, dict, "an object")
    for key, longest in table.MAX_LENGTHS.items():
        if isinstance(body.get(key), str) and len(body[key]) > longest:
            raise RequestError(f"{key} must be at most {longest} characters", param=key)
    for key in table.RANGES:
        _number(body, key)
    for key in ("truncation", "service_tier", "prompt_cache_retention"):
        _enum(body.get(key), key)
    _instructions(body.get("instructions"))
    _metadata(body.get("metadata"))
    _reasoning(body.get("reasoning"))
    _text(body.get("text"))
    _include(body.get("include"))
    _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"))
    _conversation(body)


def _kind(body: Mapping[str, Any], key: str, kind: type, name: str, param: str | None = None) -> None:
    value = body.get(key)
    # bool is an int in Python: a boolean is never a number here, nor a number a boolean.
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise RequestError(f"{param or key} must be {name}", param=param or key)


def _number(body: Mapping[str, Any], key: str) -> None:
    value = body.get(key)
    if value is None:
        return
    integer = key in table.INTEGERS
    ok = isinstance(value, int) if integer else isinstance(value, int | float) and math.isfinite(value)
    if isinstance(value, bool) or not ok:
        raise RequestError(f"{key} must be {'an integer' if integer else 'a number'}", param=key)
    low, high = table.RANGES[key]
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RequestError(f"{key} must be {bounds}; got {value}", param=key)


def _enum(value: Any, param: str, where: str | None = None) -> None:
    if value is None:
        return
    allowed = table.ENUMS[param]
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value) if isinstance(value, str | int | float) else type(value).__name__
        raise RequestError(f"{where or param} must be one of {', '.join(allowed)}; got {shown[:80]}",
                           param=where or param)


def _instructions(value: Any) -> None:
    # A string, or (as the API also takes) a list of input items the renderer reads.
    if value is not None and not isinstance(value, str | list):
        raise RequestError("instructions must be a string or a list of input items", param="instructions")


def _metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RequestError("metadata must map strings to strings", param="metadata")
    if len(value) > table.METADATA_MAX_KEYS:
        raise RequestError(f"metadata may hold at most {table.METADATA_MAX_KEYS} pairs", param="metadata")
    for key, item in value.items():
        if len(key) > table.METADATA_MAX_KEY or len(item) > table.METADATA_MAX_VALUE:
            raise RequestError(f"metadata keys are at most {table.METADATA_MAX_KEY} characters and values at "
                               f"most {table.METADATA_MAX_VALUE}", param=f"metadata.{key[:64]}")


def _reasoning(value: Any) -> None:
    if value is None:
        return
    for key in ("effort", "summary", "generate_summary"):
        _enum(value.get(key), f"reasoning.{key}")


def _text(value: Any) -> None:
    if value is None:
        return
    _enum(value.get("verbosity"), "text.verbosity")
    form = value.get("format")
    if form is None:
        return
    if not isinstance(form, dict):
        raise RequestError("text.format must be an object", param="text.format")
    _enum(form.get("type"), "text.format.type")
    if form.get("type") is None:
        raise RequestError("text.format.type is required", param="text.format.type")
    if form["type"] == "json_schema":
        _kind(form, "name", str, "a string", "text.format.name")
        if not isinstance(form.get("name"), str) or not isinstance(form.get("schema"), dict):
            raise RequestError("text.format of type json_schema needs a name and a schema object",
                               param="text.format")


def _include(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise RequestError("include must be an array", param="include")
    for index, entry in enumerate(value):
        _enum(entry, "include[]", f"include[{index}]")


def _tools(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise RequestError("tools must be an array", param="tools")
    for index, tool in enumerate(value):
        _tool(tool, f"tools[{index}]")


def _tool(tool: Any, where: str) -> None:
    if not isinstance(tool, dict):
        raise RequestError(f"{where} must be an object", param=where)
    if tool.get("type") is None:
        raise RequestError(f"{where}.type is required", param=f"{where}.type")
    _enum(tool["type"], "tools[].type", f"{where}.type")
    if tool["type"] in ("function", "custom"):
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise RequestError(f"{where}.name must be a non-empty string", param=f"{where}.name")
        _kind(tool, "strict", bool, "a boolean", f"{where}.strict")
        _kind(tool, "description", str, "a string", f"{where}.description")
    if tool["type"] == "function":
        _kind(tool, "parameters", dict, "an object", f"{where}.parameters")
    if tool["type"] == "namespace":
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise RequestError(f"{where}.tools must be an array", param=f"{where}.tools")
        for index, member in enumerate(inner):
            _tool(member, f"{where}.tools[{index}]")


def _tool_choice(value: Any) -> None:
    if value is None or isinstance(value, str):
        _enum(value, "tool_choice")
        return
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise RequestError("tool_choice must be none, auto, required or an object with a type",
                           param="tool_choice")
    if value["type"] in ("function", "custom") and not isinstance(value.get("name"), str):
        raise RequestError("tool_choice.name must be a string", param="tool_choice.name")
    if value["type"] == "allowed_tools":
        if value.get("mode") not in ("auto", "required"):
            raise RequestError("tool_choice.mode must be auto or required", param="tool_choice.mode")
        if not isinstance(value.get("tools"), list):
            raise RequestError("tool_choice.tools must be an array", param="tool_choice.tools")


def _conversation(body: Mapping[str, Any]) -> None:
    conversation = body.get("conversation")
    if conversation is not None and not isinstance(conversation, str | dict):
        raise RequestError("conversation must be a string or an object", param="conversation")
    if conversation is not None and body.get("previous_response_id") is not None:
        raise RequestError("previous_response_id cannot be used together with conversation",
                           param="previous_response_id")
