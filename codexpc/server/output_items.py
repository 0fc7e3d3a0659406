"""The output items of a streamed response: the one being streamed (`OpenItem`, with its delta
event's JSON from a template: tests compare the bytes) and the published item it is at each status
(reasoning, message, function call, custom tool call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Content as ReasoningContent
from openai.types.responses.response_reasoning_item import Summary as ReasoningSummary

from codexpc.harmony.events import MessageKind
from codexpc.harmony.tools import FUNCTIONS, split_recipient
from codexpc.server.reasoning_summary import SummaryTitler
from codexpc.server.sse import Delta, json_string

OutputItem = ResponseReasoningItem | ResponseOutputMessage | ResponseFunctionToolCall | ResponseCustomToolCall
_DELTA_TYPES = {
    "reasoning": "response.reasoning_text.delta",
    "tool_call": "response.function_call_arguments.delta",
    "custom_tool_call": "response.custom_tool_call_input.delta",
}
SUMMARY_DELTA = "response.reasoning_summary_text.delta"
CALLS = ("tool_call", "custom_tool_call")
ID_PREFIXES = {"reasoning": "rs", "tool_call": "fc", "custom_tool_call": "ctc"}


@dataclass
class OpenItem:
    """The output item being streamed: its text so far and its delta event's JSON template."""

    kind: MessageKind
    index: int
    item_id: str
    recipient: str = ""
    call_id: str = ""
    parts: list[str] = field(default_factory=list)  # the text so far, one part per delta
    titler: SummaryTitler | None = None  # set: a reasoning item streamed as summary text

    def __post_init__(self) -> None:
        # The delta event's JSON around its text and sequence number, keys in pydantic's order.
        self.delta_type = SUMMARY_DELTA if self.titler else _DELTA_TYPES.get(self.kind, "response.output_text.delta")
        item = f'"item_id":{json_string(self.item_id)}'
        no_content_index = self.kind in CALLS or self.titler is not None
        self.delta_head = '{"delta":' if no_content_index else '{"content_index":0,"delta":'
        logprobs = ',"logprobs":[]' if self.delta_type == "response.output_text.delta" else ""
        self.delta_mid = f',{item}{logprobs},"output_index":{self.index},"sequence_number":'
        summary = ',"summary_index":0' if self.titler else ""
        self.delta_end = f'{summary},"type":"{self.delta_type}"}}'

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str, sequence_number: int) -> Delta:
        self.parts.append(text)
        return Delta(self.delta_type, self.delta_head, text, f"{self.delta_mid}{sequence_number}{self.delta_end}")

    def summary_delta(self, text: str, sequence_number: int) -> Delta:
        """A delta of the summary text (the raw text is kept in `parts` by the caller)."""
        return Delta(self.delta_type, self.delta_head, text, f"{self.delta_mid}{sequence_number}{self.delta_end}")


def output_item(opened: OpenItem, status: Any) -> OutputItem:
    """The published item of `opened` at `status` (in_progress items carry no text yet)."""
    if opened.kind == "reasoning":
        return _reasoning(opened, status)
    if opened.kind == "tool_call":
        return _call(opened, status)
    if opened.kind == "custom_tool_call":
        return _custom_call(opened, status)
    return _message(opened, status)


def _reasoning(opened: OpenItem, status: Any) -> ResponseReasoningItem:
    content = [ReasoningContent(type="reasoning_text", text=opened.text)] if opened.text else []
    summary_text = opened.titler.text if opened.titler is not None and status != "in_progress" else ""
    summary = [ReasoningSummary(type="summary_text", text=summary_text)] if summary_text else []
    # No encrypted_content: the schema allows a string or nothing, and there is nothing to encrypt.
    return ResponseReasoningItem(type="reasoning", id=opened.item_id, summary=summary, content=content,
                                 status=status)


def _message(opened: OpenItem, status: Any) -> ResponseOutputMessage:
    content: list[Any] = []
    if status != "in_progress":
        content.append(ResponseOutputText(type="output_text", text=opened.text, annotations=[], logprobs=[]))
    phase: Any = "final_answer" if opened.kind == "final" else "commentary"
    return ResponseOutputMessage(type="message", id=opened.item_id, role="assistant", status=status,
                                 content=content, phase=phase)


def _call(opened: OpenItem, status: Any) -> ResponseFunctionToolCall:
    namespace, name = split_recipient(opened.recipient)
    arguments = opened.text if status != "in_progress" else ""
    call = ResponseFunctionToolCall(type="function_call", id=opened.item_id, call_id=opened.call_id, name=name,
                                    arguments=arguments, status=status)
    if namespace != FUNCTIONS:  # a tool inside a Responses `namespace` tool
        call.namespace = namespace
    return call


def _custom_call(opened: OpenItem, status: Any) -> ResponseCustomToolCall:
    # No status field in the SDK's type; Codex reads call_id, name and input.
    namespace, name = split_recipient(opened.recipient)
    text = opened.text if status != "in_progress" else ""
    call = ResponseCustomToolCall(type="custom_tool_call", id=opened.item_id, call_id=opened.call_id, name=name,
                                  input=text)
    if namespace != FUNCTIONS:
        call.namespace = namespace
    return call


def content_part(opened: OpenItem, text: str) -> Any:
    # A plain dict: the added and done events each define their own reasoning part class.
    if opened.kind == "reasoning":
        return {"type": "reasoning_text", "text": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
