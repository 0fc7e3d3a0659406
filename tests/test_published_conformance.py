"""What a real daemon sends (uvicorn on a loopback socket, the scripted engine) validates against
OpenAI's published description: Response objects without streaming, and every streamed event
by its own schema, for a completed answer with reasoning, a tool call, an output cap
(incomplete) and broken Harmony (failed). Skips where ../shared/specs is absent.

One documented extension: a failed Response's error.code may also be one of
EXTRA_RESPONSE_ERROR_CODES (OpenAI's own service sends context_length_exceeded there too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import published_spec
import pytest
from live_server import serve_in_thread
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine, default_script
from codexpc.server.app import create_app
from codexpc.server.errors import EXTRA_RESPONSE_ERROR_CODES
from codexpc.server.runtime import Runtime

BROKEN = "<|channel|>final<|message|>half an answer<|start|>"  # a new message inside one: not Harmony
SHELL = {"type": "function", "name": "exec_command", "description": "Run a command",
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "completed with reasoning": ({"input": "What is 2+2?", "instructions": "Be brief."}, "completed"),
    "tool call": ({"input": "list files", "tools": [SHELL], "tool_choice": "auto"}, "completed"),
    "incomplete": ({"input": "Say a lot", "max_output_tokens": 3}, "incomplete"),
    "failed": ({"input": "break", "metadata": {"case": "broken"}}, "failed"),
}


def _script(prompt: str) -> str:
    return BROKEN if "break" in prompt.rpartition("<|start|>user<|message|>")[2] else default_script(prompt)


@pytest.fixture(scope="module")
def base_url(encoding: HarmonyEncoding) -> Iterator[str]:
    published_spec.spec_or_skip()
    with serve_in_thread(create_app(Runtime(ScriptedEngine(encoding, script=_script), encoding))) as url:
        yield url


def _validate_response(obj: dict[str, Any]) -> None:
    problems = published_spec.errors("Response", obj)
    code = (obj.get("error") or {}).get("code")
    if code in EXTRA_RESPONSE_ERROR_CODES:  # the documented extension, and only it
        problems = [p for p in problems if not p.startswith("error")]
    assert not problems, "\n".join(problems)
    assert isinstance(obj["created_at"], int)
    assert (obj.get("completed_at") is not None) == (obj["status"] == "completed")
    if obj["status"] == "completed":
        assert isinstance(obj["completed_at"], int) and obj["completed_at"] >= obj["created_at"]
    for field in ("previous_response_id", "instructions", "truncation", "text", "presence_penalty",
                  "frequency_penalty", "top_logprobs", "max_tool_calls", "store", "background", "service_tier",
                  "safety_identifier", "prompt_cache_key"):
        assert field in obj, field
    for item in obj["output"]:
        assert item.get("encrypted_content", "") is not None


def _events(raw: str) -> list[dict[str, Any]]:
    events = []
    for frame in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(data)
    return events


@pytest.mark.parametrize("case", list(CASES))
def test_a_response_validates_against_the_published_schema(base_url: str, case: str) -> None:
    body, status = CASES[case]
    reply = httpx.post(f"{base_url}/v1/responses", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    obj = reply.json()
    assert obj["status"] == status
    _validate_response(obj)
    assert obj["tool_choice"] in ("auto", body.get("tool_choice"))
    if case == "tool call":
        assert [i["type"] for i in obj["output"]] == ["reasoning", "function_call"]
        assert obj["tools"][0]["strict"] is True  # the API's default, echoed
    if case == "completed with reasoning":
        assert obj["output"][0]["type"] == "reasoning" and "encrypted_content" not in obj["output"][0]


@pytest.mark.parametrize("case", list(CASES))
def test_every_streamed_event_validates_against_its_published_schema(base_url: str, case: str) -> None:
    body, status = CASES[case]
    reply = httpx.post(f"{base_url}/v1/responses", json={**body, "stream": True}, timeout=30)
    assert reply.status_code == 200, reply.text
    events = _events(reply.text)
    names = published_spec.stream_event_schemas()
    for event in events:
        assert event["type"] in names, f"{event['type']} is not a published event"
        if "response" in event:
            _validate_response(event["response"])
            continue
        published_spec.validate(names[event["type"]], event)
    assert events[-1]["type"] == f"response.{status}"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    if case == "completed with reasoning":  # Codex's names, which are OpenAI's
        assert "response.reasoning_text.delta" in {e["type"] for e in events}
