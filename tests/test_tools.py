"""The tool registry: built from request tools, schemas compiled once, structured call errors."""

from __future__ import annotations

from typing import Any

import pytest

from codexpc.errors import RequestError
from codexpc.harmony import tools as tools_module
from codexpc.harmony.events import ToolCallError
from codexpc.harmony.tools import (
    FUNCTIONS,
    Namespace,
    ToolRegistry,
    ToolSpec,
    registry_from_chat,
    registry_from_responses,
    split_recipient,
)

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "array", "items": {"type": "string"}}, "timeout": {"type": "integer"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
}
SPAWN = {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}
AGENTS = {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [SPAWN]}


def test_codex_tools_build_functions_and_namespace_and_skip_web_search(codex_turn1_request: dict[str, Any]) -> None:
    registry, skipped = registry_from_responses(codex_turn1_request["tools"])
    assert skipped == ["web_search"]
    assert "functions.exec_command" in registry.names()
    assert "multi_agent_v1.spawn_agent" in registry.names()
    assert [ns.name for ns in registry.namespaces()] == [FUNCTIONS, "multi_agent_v1"]
    assert registry.validate("functions.exec_command", '{"cmd": "ls -la"}') is None


def test_valid_call_has_no_error() -> None:
    registry, _ = registry_from_responses([SHELL, AGENTS])
    assert registry.validate("functions.shell", '{"cmd": ["ls", "-la"], "timeout": 5}') is None
    assert registry.validate("agents.spawn_agent", "{}") is None


def test_unknown_tool_is_structured() -> None:
    registry, _ = registry_from_responses([SHELL])
    error = registry.validate("functions.python", "{}")
    assert isinstance(error, ToolCallError)
    assert (error.tool, error.path, error.kind) == ("functions.python", "$", "unknown_tool")
    # A namespaced tool's bare name is not the tool: the recipient must match exactly.
    registry, _ = registry_from_responses([AGENTS])
    assert registry.validate("functions.spawn_agent", "{}") is not None


def test_arguments_that_are_not_json() -> None:
    registry, _ = registry_from_responses([SHELL])
    error = registry.validate("functions.shell", '{"cmd": ["ls"')
    assert error is not None and error.kind == "invalid_json" and error.path == "$"


def test_deeply_nested_arguments_do_not_escape() -> None:
    registry, _ = registry_from_responses([SHELL])
    error = registry.validate("functions.shell", "[" * 100_000)
    assert error is not None and error.kind == "invalid_json"


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ('{"cmd": "ls"}', "$.cmd"),
        ('{"cmd": ["ls", 3]}', "$.cmd[1]"),
        ("{}", "$"),
        ('{"cmd": ["ls"], "extra": 1}', "$"),
        ("[]", "$"),
    ],
)
def test_schema_violations_name_the_json_path(arguments: str, path: str) -> None:
    registry, _ = registry_from_responses([SHELL])
    error = registry.validate("functions.shell", arguments)
    assert error is not None and error.kind == "schema"
    assert error.path == path and error.tool == "functions.shell" and error.message


def test_schema_dialect_comes_from_the_schema() -> None:
    # Draft 4 has boolean exclusiveMaximum; under 2020-12 this schema would be invalid.
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "maximum": 3, "exclusiveMaximum": True}
    registry = ToolRegistry([Namespace(FUNCTIONS, "", (ToolSpec(FUNCTIONS, "f", "", schema),))])
    assert registry.validate("functions.f", "2") is None
    error = registry.validate("functions.f", "3")
    assert error is not None and error.kind == "schema"


def test_tool_without_parameters_accepts_any_json() -> None:
    registry, _ = registry_from_responses([{"type": "function", "name": "ping"}])
    assert registry.validate("functions.ping", "{}") is None
    error = registry.validate("functions.ping", "nope")
    assert error is not None and error.kind == "invalid_json"


def test_chat_tools() -> None:
    tools = [{"type": "function", "function": {"name": "shell", "parameters": SHELL["parameters"]}}, {"type": "retrieval"}]
    registry, skipped = registry_from_chat(tools)
    assert registry.names() == ["functions.shell"] and skipped == ["retrieval"]


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ("shell", "tools"),
        (["shell"], "tools[0]"),
        ([{"type": "function", "name": "bad name"}], "tools[0].name"),
        ([{"type": "function", "name": "a.b"}], "tools[0].name"),
        ([{"type": "function", "name": "f", "parameters": []}], "tools[0].parameters"),
        ([{"type": "namespace", "name": "functions", "tools": []}], "tools[0].name"),
        ([{"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}], "tools[0].tools[0].name"),
        ([SHELL, SHELL], "tools"),
        ([{"type": "function", "name": "f", "parameters": {"type": "nonsense"}}], "tools"),
    ],
)
def test_malformed_tools_are_request_errors(tools: Any, param: str) -> None:
    with pytest.raises(RequestError) as caught:
        registry_from_responses(tools)
    assert caught.value.param == param


def test_split_recipient() -> None:
    assert split_recipient("functions.shell") == ("functions", "shell")
    assert split_recipient("multi_agent_v1.spawn_agent") == ("multi_agent_v1", "spawn_agent")
    assert split_recipient("shell") == ("functions", "shell")


def test_schemas_are_compiled_once_per_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _ = registry_from_responses([SHELL])

    def no_more_compiling(*args: object) -> None:
        raise AssertionError("validate() compiled a schema")

    monkeypatch.setattr(tools_module, "_compile", no_more_compiling)
    assert registry.validate("functions.shell", '{"cmd": ["ls"]}') is None
    assert registry.validate("functions.shell", '{"cmd": 1}') is not None


def test_members_of_a_namespace_other_than_function_or_custom_are_skipped() -> None:
    custom = {"type": "custom", "name": "apply_patch"}
    search = {"type": "web_search"}
    registry, skipped = registry_from_responses([dict(AGENTS, tools=[SPAWN, custom, search]), {"type": "web_search"}])
    assert registry.names() == ["agents.spawn_agent", "agents.apply_patch"] and skipped == ["web_search", "web_search"]
    assert registry.is_custom("agents.apply_patch") and not registry.is_custom("agents.spawn_agent")
