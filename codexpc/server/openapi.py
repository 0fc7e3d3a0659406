"""The HTTP API's OpenAPI description, written by hand: the routes read raw JSON (Codex sends
fields no typed model would keep up with), so FastAPI cannot derive it.

The request schemas describe the bodies loosely: the fields codexpc reads, with their types and
ranges, and any other field allowed. A fuzzer (schemathesis, tests/test_fuzz_openapi.py) generates
bodies from them and checks every answer against the responses listed here: no 5xx, and each
status with the OpenAI error body.
"""

from __future__ import annotations

from typing import Any

from codexpc.efforts import EFFORT_NAMES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _nullable(properties: dict[str, Any]) -> dict[str, Any]:
    """Optional fields may also be null, meaning "not given", as in OpenAI's API."""
    return {name: {"anyOf": [schema, {"type": "null"}]} if schema else schema for name, schema in properties.items()}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {400: "bad request (names the field)", 401: "bearer token missing or wrong (TCP)",
               403: "refused Host, Origin or transport", 404: "unknown model or route", 405: "wrong method",
               413: "body too large", 415: "body not application/json",
               429: "too many requests at once (Retry-After)", 503: "shutting down (Retry-After)"}
    return {str(s): {"description": reasons[s], "content": {"application/json": {"schema": _ERROR_REF}}}
            for s in statuses}


# One server-sent event as schemathesis parses it; Chat streams have no `event:` line.
_SSE_EVENT = {"type": "object", "required": ["data"],
              "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}

_GENERATION_ERRORS = _errors(400, 401, 403, 404, 413, 415, 429, 503)

_SAMPLING: dict[str, Any] = {
    "model": {"type": "string"},
    "stream": {"type": "boolean"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "tools": {"type": "array", "items": {"type": "object"}},
    "tool_choice": {},
}

_INPUT_ITEM = {
    # anyOf: any other item type is accepted and left out of the prompt (Codex resumes threads
    # that carry web_search_call, compaction items, ...), so the branches overlap.
    "anyOf": [
        {"type": "object", "required": ["role", "content"], "properties": {
            "type": {"const": "message"},
            "role": {"enum": ["user", "assistant", "system", "developer"]},
            "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}},
        {"type": "object", "required": ["type", "call_id", "name"], "properties": {
            "type": {"const": "function_call"}, "call_id": {"type": "string"}, "name": {"type": "string"},
            "arguments": {"type": "string"}}},
        {"type": "object", "required": ["type", "call_id", "output"], "properties": {
            "type": {"const": "function_call_output"}, "call_id": {"type": "string"},
            "output": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}},
        {"type": "object", "required": ["type"], "properties": {
            "type": {"const": "reasoning"}, "summary": {"type": ["array", "null"]},
            "content": {"type": ["array", "null"]}}},
        {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
    ]
}

RESPONSES_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": _nullable({
        **_SAMPLING,
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": _INPUT_ITEM}]},
        "instructions": {"type": "string"},
        "parallel_tool_calls": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "max_output_tokens": {"type": "integer", "minimum": 1},
        "reasoning": {"type": "object", "properties": _nullable({
            "effort": {"enum": list(EFFORT_NAMES)}, "summary": {}})},
        # Read by nothing here (nothing is stored; no extra output exists to include): any value.
        "store": {},
        "include": {},
    }),
}

_MESSAGE = {"type": "object", "required": ["role"], "properties": {
    "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"oneOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": {"type": "object"}}]},
    # Checked by role (tool_calls on assistant messages, tool_call_id on tool messages), else ignored.
    "tool_call_id": {},
    "tool_calls": {}}}

CHAT_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "messages": {"type": "array", "items": _MESSAGE},
        **_nullable({
            **_SAMPLING,
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "stream_options": {"type": "object", "properties": _nullable({"include_usage": {"type": "boolean"}})},
        }),
    },
}


def _generation(summary: str, schema_name: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}},
        "responses": {
            "200": {"description": "the response, or its events when stream is true",
                    "content": {"application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": _SSE_EVENT}}},
            **_GENERATION_ERRORS,
        },
    }}


def _get(summary: str, *statuses: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
        **_errors(*statuses)}}}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at GET /openapi.json."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "codexpc", "version": "1",
                 "description": "OpenAI-compatible Responses and Chat Completions for a local gpt-oss model."},
        "paths": {
            "/v1/responses": _generation("Create a response (Responses API)", "ResponsesRequest"),
            "/v1/chat/completions": _generation("Create a chat completion", "ChatRequest"),
            "/v1/models": _get("The models served", 401, 403),
            "/v1/models/{name}": {**_get("One model by name or alias", 401, 403, 404), "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]},
            "/health": _get("Liveness, model, device, memory", 401, 403),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors(401, 403)}}},
        },
        "components": {"schemas": {"Error": _ERROR, "ResponsesRequest": RESPONSES_REQUEST,
                                   "ChatRequest": CHAT_REQUEST}},
    }
