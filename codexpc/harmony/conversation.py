"""A request's conversation, gathered item by item, then rendered by openai-harmony.

Both request formats (Responses, Chat Completions) map their items onto a `Transcript`; it
keeps the rules that Harmony itself imposes in one place: every instruction goes into the one
developer message, tool results are addressed by the call they answer, and chain of thought
is kept only within the current tool loop (since the last final answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncoding,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    Role,
    SystemContent,
    TextContent,
    ToolDescription,
    ToolNamespaceConfig,
)

from codexpc.errors import RequestError
from codexpc.harmony.tools import CODE_CONTENT_TYPE, JSON_CONTENT_TYPE, ToolRegistry, ToolSpec

Effort = Literal["low", "medium", "high"]
CHANNELS = ("analysis", "commentary", "final")
# A custom tool is declared as taking one string, so the model's TypeScript-like view of it says
# "raw text" (docs/codex-tools.md); how to write it follows in its description.
_CUSTOM_PARAMETERS = {"type": "string"}
_CUSTOM_NOTE = (
    "This tool is FREEFORM: call it with content type `code` and write its raw input as the message "
    "body, exactly as the grammar below says; never wrap it in JSON or quotes."
)
_EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}


@dataclass(frozen=True)
class _Entry:
    message: Message
    is_reasoning: bool = False
    is_final: bool = False  # an assistant answer on the final channel: a tool loop ends here


@dataclass
class Transcript:
    """The messages of one request in order; instructions are hoisted into the developer message."""

    instructions: list[str] = field(default_factory=list)
    user_parts: int = 0
    _entries: list[_Entry] = field(default_factory=list)
    _calls: dict[str, str] = field(default_factory=dict)  # call id -> recipient

    def instruction(self, text: str) -> None:
        if text:
            self.instructions.append(text)

    def user(self, parts: Sequence[str]) -> None:
        self.user_parts += len(parts)
        self._add(Message.from_role_and_content(Role.USER, "\n".join(parts)))

    def answer(self, text: str) -> None:
        """An earlier assistant answer (final channel)."""
        self._add(_assistant(text).with_channel("final"), is_final=True)

    def preamble(self, text: str) -> None:
        """Earlier user-visible assistant text before a tool call (commentary, no recipient)."""
        self._add(_assistant(text).with_channel("commentary"))

    def reasoning(self, text: str) -> None:
        self._add(_assistant(text).with_channel("analysis"), is_reasoning=True)

    def call(self, recipient: str, arguments: str, call_id: str | None) -> None:
        message = (
            _assistant(arguments)
            .with_channel("commentary")
            .with_recipient(recipient)
            .with_content_type(JSON_CONTENT_TYPE)
        )
        self._add(message)
        if call_id:
            self._calls[call_id] = recipient

    def custom_call(self, recipient: str, text: str, call_id: str | None) -> None:
        """An earlier call of a custom (freeform) tool: its raw input as a `code` message."""
        message = (
            _assistant(text).with_channel("commentary").with_recipient(recipient).with_content_type(CODE_CONTENT_TYPE)
        )
        self._add(message)
        if call_id:
            self._calls[call_id] = recipient

    def tool_result(self, call_id: str, output: str, param: str) -> None:
        """A tool's answer, spoken by the tool that the call with `call_id` addressed."""
        recipient = self._calls.get(call_id)
        if recipient is None:
            raise RequestError(f"no earlier tool call has call id {call_id!r}", param=param)
        author = Author.new(Role.TOOL, recipient)
        message = Message.from_author_and_content(author, output).with_channel("commentary")
        self._add(message.with_recipient("assistant"))

    def kept(self) -> tuple[list[Message], int]:
        """The messages to render and how many reasoning messages were dropped.

        Harmony drops chain of thought once a final answer was given: reasoning before the
        last final answer goes, reasoning of the current tool loop stays.
        """
        last_final = max((i for i, e in enumerate(self._entries) if e.is_final), default=-1)
        kept = [e.message for i, e in enumerate(self._entries) if i > last_final or not e.is_reasoning]
        return kept, len(self._entries) - len(kept)

    def _add(self, message: Message, *, is_reasoning: bool = False, is_final: bool = False) -> None:
        self._entries.append(_Entry(message, is_reasoning, is_final))


def _assistant(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, TextContent(text=text))


def system_message(effort: Effort, current_date: str, knowledge_cutoff: str) -> Message:
    content = (
        SystemContent.new()
        .with_reasoning_effort(_EFFORTS[effort])
        .with_conversation_start_date(current_date)
        .with_knowledge_cutoff(knowledge_cutoff)
        .with_required_channels(list(CHANNELS))
    )
    return Message.from_role_and_content(Role.SYSTEM, content)


def developer_message(instructions: Sequence[str], registry: ToolRegistry) -> Message | None:
    """The developer message: instructions, then one Harmony namespace per tool namespace."""
    if not instructions and not len(registry):
        return None
    content = DeveloperContent.new()
    if instructions:
        content = content.with_instructions("\n\n".join(instructions))
    for ns in registry.namespaces():
        tools = [_description(t) for t in ns.tools]
        content = content.with_tools(ToolNamespaceConfig(name=ns.name, description=ns.description or None, tools=tools))
    return Message.from_role_and_content(Role.DEVELOPER, content)


def _description(tool: ToolSpec) -> ToolDescription:
    if not tool.is_custom:
        return ToolDescription.new(tool.name, tool.description, _schema(tool.parameters))
    parts = [tool.description.strip(), _CUSTOM_NOTE]
    if tool.definition:
        parts.append(f"Input grammar ({tool.syntax}):\n{tool.definition.strip()}")
    return ToolDescription.new(tool.name, "\n".join(p for p in parts if p), dict(_CUSTOM_PARAMETERS))


def _schema(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(parameters) if parameters is not None else None


def render_tokens(encoding: HarmonyEncoding, messages: Sequence[Message]) -> list[int]:
    """Prompt tokens ending with `<|start|>assistant`, ready for the model's next message."""
    # We dropped old reasoning ourselves (and counted it); Harmony must not drop more.
    config = RenderConversationConfig(auto_drop_analysis=False)
    return list(encoding.render_conversation_for_completion(Conversation.from_messages(messages), Role.ASSISTANT, config))
