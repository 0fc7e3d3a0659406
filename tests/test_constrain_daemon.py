"""Constrained decoding through the whole daemon: `codexpc serve` on a tiny RANDOM-WEIGHTS
checkpoint (the paged engine on the CPU), Codex's real turn-1 request over the Unix socket.

Unconstrained, such a model breaks Harmony within a few tokens and every response fails
(test_constrain_engine.py shows it); constrained, every response completes or runs out of
tokens, and every tool call it makes names an offered tool with arguments its schema accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_daemon import DaemonProcess

MAX_TOKENS = 96
SEEDS = range(6)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from codexpc.checkpoint import write_checkpoint
    from codexpc.engine.model_config import TINY

    checkpoint = write_checkpoint(TINY, "original", tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)
    toml = (f'default_model = "tiny"\ndevice = "cpu"\n[models."tiny"]\nengine = "paged"\n'
            f'checkpoint = "{checkpoint}"\n')
    process = DaemonProcess(toml=toml)
    process.start()
    yield process
    process.close()


def post(daemon: DaemonProcess, body: dict[str, Any]) -> dict[str, Any]:
    with daemon.unix_client(timeout=300) as unix:
        reply = unix.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def function_schemas(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Every function tool's parameters by name, those inside namespaces too."""
    out: dict[str, Any] = {}
    for tool in tools:
        if tool.get("type") == "function":
            out[tool["name"]] = tool.get("parameters")
        elif tool.get("type") == "namespace":
            out.update(function_schemas(tool.get("tools", [])))
    return out


@pytest.mark.slow  # a CPU prefill of Codex's ~7k-token prompt (~15 s), then the prefix cache
def test_random_weights_answer_codex_turn1_with_well_formed_output_only(
        daemon: DaemonProcess, codex_turn1_request: dict[str, Any]) -> None:
    schemas = function_schemas(codex_turn1_request["tools"])
    for seed in SEEDS:
        body = {**codex_turn1_request, "stream": False, "model": "tiny", "max_output_tokens": MAX_TOKENS,
                "temperature": 1.0, "seed": seed}
        response = post(daemon, body)
        assert response["status"] in ("completed", "incomplete"), response.get("error")
        for item in response["output"] if response["status"] == "completed" else ():
            if item["type"] == "function_call":
                assert item["name"] in schemas, item
                jsonschema.validate(json.loads(item["arguments"]), schemas[item["name"]] or {})
    log = daemon.log()
    assert log.count("constrained=yes") >= len(SEEDS), log[-3000:]
    assert "status=failed" not in log, log[-3000:]
    with daemon.unix_client() as unix:
        health = unix.get("/health").json()
        metrics = unix.get("/metrics").text
    assert health["engine"]["stats"]["constrained_decoding"] is True
    assert health["engine"]["stats"]["constraint_failures"] == 0
    assert "codexpc_constraint_violations_total 0" in metrics


@pytest.mark.slow
def test_a_json_schema_text_format_is_what_the_final_answer_is(daemon: DaemonProcess) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    body = {"model": "tiny", "input": "How many?", "stream": False, "max_output_tokens": 400, "seed": 1,
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}}}
    response = post(daemon, body)
    if response["status"] == "completed":  # random weights may spend every token reasoning
        text = "".join(part["text"] for item in response["output"] if item["type"] == "message"
                       for part in item["content"])
        jsonschema.validate(json.loads(text), schema)
    else:
        assert response["status"] == "incomplete", response


def test_a_strict_schema_that_cannot_be_enforced_is_a_400_naming_the_tool(daemon: DaemonProcess) -> None:
    tool = {"type": "function", "name": "bad", "strict": True, "parameters": {"type": "object", "properties": {
        "x": {"type": "string", "pattern": "(?<=lookbehind)x"}}}}
    with daemon.unix_client(timeout=60) as unix:
        reply = unix.post("/v1/responses", json={"model": "tiny", "input": "hi", "tools": [tool]})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_constraint" and "bad" in error["message"], error
    assert Path(daemon.socket_path).exists()  # and the daemon is still up
