"""Runtime: model names and aliases, and a reload that lets running requests finish on the old engine."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.errors import ModelNotFoundError, RequestError
from codexpc.server.request import RequestLimits, parse_responses
from codexpc.server.runtime import ModelEntry, Runtime, default_aliases


def test_models_resolve_by_name_and_alias(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding), encoding,
                      models=[ModelEntry("gpt-oss-20b", 131072, ("gpt-oss:20b",)), ModelEntry("gpt-oss-120b", 131072)])
    assert runtime.resolve_model("gpt-oss:20b").name == "gpt-oss-20b"
    assert runtime.resolve_model("gpt-oss-120b").name == "gpt-oss-120b"
    assert runtime.resolve_model(None).name == "gpt-oss-20b"
    with pytest.raises(ModelNotFoundError):
        runtime.resolve_model("gpt-4o")


def test_without_configured_models_the_engine_model_is_served_with_its_ollama_alias(encoding: HarmonyEncoding) -> None:
    runtime = Runtime(ScriptedEngine(encoding, model="gpt-oss-120b", context_length=4096), encoding)
    (entry,) = runtime.models
    assert (entry.name, entry.aliases, entry.context_length) == ("gpt-oss-120b", ("gpt-oss:120b",), 4096)
    assert default_aliases("tiny") == ()


async def test_reload_keeps_the_old_engine_until_its_requests_end(encoding: HarmonyEncoding) -> None:
    old, new = ScriptedEngine(encoding), ScriptedEngine(encoding, model="gpt-oss-120b")
    runtime = Runtime(old, encoding)
    lease = runtime.acquire()
    await runtime.reload(new, models=[ModelEntry("gpt-oss-120b", 131072)])
    assert runtime.engine is new and lease.engine is old
    assert not old.closed  # a request still runs on it
    assert runtime.resolve_model("gpt-oss-120b").name == "gpt-oss-120b" and runtime.reloads == 1
    await lease.release()
    await lease.release()  # releasing twice is harmless
    assert old.closed and not new.closed


async def test_reload_with_nothing_running_closes_the_old_engine_at_once(encoding: HarmonyEncoding) -> None:
    old, new = ScriptedEngine(encoding), ScriptedEngine(encoding)
    runtime = Runtime(old, encoding)
    await runtime.reload(new)
    assert old.closed and runtime.in_flight == 0
    await runtime.close()
    assert new.closed


def test_request_limits_from_the_daemon_config_and_their_checks() -> None:
    @dataclass(frozen=True)
    class LimitsConfig:  # the shape of codexpc.config's, plus a field the server does not use
        max_output_tokens: int = 64
        default_max_output_tokens: int = 8
        max_input_items: int = 2
        max_tools: int = 1
        max_tool_schema_bytes: int = 40
        queue_size: int = 3
        max_body_bytes: int = 1000
        shutdown_timeout_s: float = 1.0

    limits = RequestLimits.from_config(LimitsConfig())
    assert limits == RequestLimits(64, 8, 2, 1, 40, 3, max_body_bytes=1000)
    parse_responses(json.dumps({"input": [1, 2], "tools": [{"type": "function", "name": "a"}]}).encode(), limits)
    for body, param in (({"input": [1, 2, 3]}, "input"), ({"tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}]}, "tools"),
                        ({"tools": [{"type": "function", "name": "x" * 50}]}, "tools[0]")):
        with pytest.raises(RequestError) as refused:
            parse_responses(json.dumps(body).encode(), limits)
        assert refused.value.param == param
    with pytest.raises(RequestError) as refused:  # the configured body limit is the one applied
        parse_responses(json.dumps({"input": "x" * 1000}).encode(), limits)
    assert refused.value.code == "request_too_large"
