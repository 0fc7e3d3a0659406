"""Custom tool calls and the reasoning summary through decoder and ResponsesStream (real harmony)."""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import (
    ResponseCustomToolCallInputDeltaEvent,
    ResponseReasoningSummaryTextDeltaEvent,
)
from openai_harmony import HarmonyEncoding

from codexpc.harmony.decoder import HarmonyDecoder
from codexpc.harmony.events import CustomToolInputDelta, CustomToolInputDone
from codexpc.harmony.tools import registry_from_responses
from codexpc.server import sse
from codexpc.server.reasoning_summary import SummaryTitler, title_of
from codexpc.server.response_object import ResponseMeta
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.session import Usage

PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
COMPLETION = ("<|channel|>analysis<|message|>I need to add a file. Then I am done.<|end|>"
              "<|start|>assistant<|channel|>commentary to=functions.apply_patch code"
              f"<|message|>{PATCH}<|call|>")


def _frames(encoding: HarmonyEncoding, summary: str | None) -> tuple[list[dict[str, Any]], list[Any]]:
    registry, _ = registry_from_responses([{"type": "custom", "name": "apply_patch"}])
    decoder = HarmonyDecoder(encoding, registry)
    stream = ResponsesStream(ResponseMeta(id="resp_1", model="m", reasoning={"effort": None, "summary": summary}))
    events, decoded = stream.start(), []
    for token in encoding.encode(COMPLETION, allowed_special="all"):
        for event in decoder.feed(token):
            decoded.append(event)
            events += stream.feed(event)
    events += stream.finish(Usage(10, 0, 5, 3))
    return [json.loads(sse.event(e, e.type).decode().split("data: ", 1)[1]) for e in events], decoded


def test_a_custom_call_streams_its_raw_input_and_ends_as_a_custom_tool_call_item(encoding: HarmonyEncoding) -> None:
    frames, decoded = _frames(encoding, None)
    assert "".join(e.text for e in decoded if isinstance(e, CustomToolInputDelta)) == PATCH
    assert [e.input for e in decoded if isinstance(e, CustomToolInputDone)] == [PATCH]
    deltas = [f for f in frames if f["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(d["delta"] for d in deltas) == PATCH
    assert ResponseCustomToolCallInputDeltaEvent(**deltas[0]).model_dump(mode="json") == deltas[0]  # the SDK's bytes
    done = [f for f in frames if f["type"] == "response.custom_tool_call_input.done"]
    assert done and done[0]["input"] == PATCH
    item = [f["item"] for f in frames if f["type"] == "response.output_item.done"][-1]
    assert item["type"] == "custom_tool_call" and item["name"] == "apply_patch" and item["input"] == PATCH
    assert item["call_id"].startswith("call_") and frames[-1]["type"] == "response.completed"


def test_without_a_summary_asked_the_reasoning_streams_raw(encoding: HarmonyEncoding) -> None:
    frames, _ = _frames(encoding, None)
    kinds = {f["type"] for f in frames}
    assert "response.reasoning_text.delta" in kinds and "response.reasoning_summary_text.delta" not in kinds


def test_with_a_summary_asked_the_reasoning_streams_as_a_titled_summary(encoding: HarmonyEncoding) -> None:
    frames, _ = _frames(encoding, "auto")
    kinds = [f["type"] for f in frames]
    assert "response.reasoning_text.delta" not in kinds
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.reasoning_summary_text.delta")
    deltas = [f for f in frames if f["type"] == "response.reasoning_summary_text.delta"]
    assert ResponseReasoningSummaryTextDeltaEvent(**deltas[0]).model_dump(mode="json") == deltas[0]
    summary = "".join(d["delta"] for d in deltas)
    assert summary == "**I need to add a file**\n\nI need to add a file. Then I am done."
    item = [f["item"] for f in frames if f["type"] == "response.output_item.done"][0]
    assert item["summary"] == [{"type": "summary_text", "text": summary}]
    assert item["content"] == [{"type": "reasoning_text", "text": "I need to add a file. Then I am done."}]


def test_titles() -> None:
    assert title_of("Check the **file** first.\nMore", final=False) == "Check the file first"
    assert title_of("no sentence end yet", final=False) is None
    assert title_of("short", final=True) == "short"
    assert title_of("word " * 30, final=False).endswith("…")  # type: ignore[union-attr]
    titler = SummaryTitler()
    assert titler.feed("Hmm") == "" and titler.flush() == "**Hmm**\n\nHmm"
    assert SummaryTitler().flush() == "**Thinking**"


def test_a_json_schema_format_is_echoed_under_its_published_key() -> None:
    # Codex's --output-schema and its thread-title request send text.format json_schema; the
    # SDK's model names the field `schema_` (alias `schema`), and the wire must say `schema`.
    fmt = {"type": "json_schema", "name": "codex_output_schema", "schema": {"type": "object"}, "strict": True}
    created = ResponsesStream(ResponseMeta(id="resp_1", model="gpt-oss-20b", text={"format": fmt})).start()[0]
    echoed = json.loads(sse._json(created))["response"]["text"]["format"]
    assert echoed["schema"] == {"type": "object"} and "schema_" not in echoed
