"""The tool registry of one request: which recipients the model may call, and their schemas.

Built from the request's tools (Responses `function` and `namespace` tools, or Chat Completions
`function` tools). Each tool's JSON schema is compiled once, when the registry is built; a
finished call's arguments are then parsed and validated against it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codexpc.harmony.events import ToolCallError

log = logging.getLogger(__name__)

FUNCTIONS = "functions"  # Harmony's namespace for plain function tools


@dataclass(frozen=True)
class ToolSpec:
    """One callable tool: `namespace.name` is the recipient the model writes."""

    namespace: str
    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # JSON schema of the arguments object

    @property
    def recipient(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Namespace:
    """A Harmony tool namespace as rendered in the developer message."""

    name: str
    description: str
    tools: tuple[ToolSpec, ...] = field(default_factory=tuple)


class ToolRegistry:
    """The tools offered to the model in one request, with compiled argument validators."""

    def __init__(self, namespaces: Sequence[Namespace] = ()) -> None:
        raise NotImplementedError

    def names(self) -> list[str]:
        """Every recipient offered, e.g. ["functions.shell", "multi_agent_v1.spawn_agent"]."""
        raise NotImplementedError

    def namespaces(self) -> list[Namespace]:
        raise NotImplementedError

    def get(self, recipient: str) -> ToolSpec | None:
        raise NotImplementedError

    def validate(self, recipient: str, arguments: str) -> ToolCallError | None:
        """None when the tool was offered and `arguments` is JSON valid against its schema."""
        raise NotImplementedError


def split_recipient(recipient: str) -> tuple[str, str]:
    """("functions", "shell") from "functions.shell"; a bare name is taken as a function."""
    namespace, dot, name = recipient.partition(".")
    return (namespace, name) if dot else (FUNCTIONS, namespace)


def registry_from_responses(tools: Iterable[Any], param: str = "tools") -> tuple[ToolRegistry, list[str]]:
    """The registry from a Responses `tools` list, and the tool types left out (e.g. web_search)."""
    raise NotImplementedError


def registry_from_chat(tools: Iterable[Any], param: str = "tools") -> tuple[ToolRegistry, list[str]]:
    """The registry from a Chat Completions `tools` list, and the tool types left out."""
    raise NotImplementedError


_ = json  # used by the implementation
