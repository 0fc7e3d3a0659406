"""A Responses API event stream, summarised for people: a timeline, time to first token, tokens/s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from codexpc.cli.link import SseEvent

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
DELTAS = ("response.output_text.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
          "response.function_call_arguments.delta")


@dataclass
class Row:
    """One line of the timeline: an event, or a run of the same delta event."""

    name: str
    first_at: float
    last_at: float
    count: int = 1
    text: str = ""
    detail: str = ""


@dataclass
class Timeline:
    rows: list[Row] = field(default_factory=list)
    events: int = 0
    first_delta_at: float | None = None
    last_delta_at: float | None = None
    terminal: dict[str, Any] | None = None
    first_event: str | None = None
    texts: dict[str, str] = field(default_factory=dict)  # per delta event name, the text gathered

    def add(self, event: SseEvent) -> None:
        self.events += 1
        self.first_event = self.first_event or event.name
        if event.name in DELTAS:
            delta = str(event.data.get("delta", ""))
            self.texts[event.name] = self.texts.get(event.name, "") + delta
            self.first_delta_at = self.first_delta_at if self.first_delta_at is not None else event.at
            self.last_delta_at = event.at
            last = self.rows[-1] if self.rows else None
            if last is not None and last.name == event.name:
                last.count, last.last_at, last.text = last.count + 1, event.at, last.text + delta
                return
            self.rows.append(Row(event.name, event.at, event.at, text=delta))
            return
        self.rows.append(Row(event.name, event.at, event.at, detail=_detail(event.data)))
        if event.name in TERMINAL:
            self.terminal = event.data

    @property
    def outcome(self) -> str:
        return str(self.terminal.get("type")) if self.terminal else "no terminal event"

    @property
    def response(self) -> dict[str, Any]:
        return dict((self.terminal or {}).get("response") or {})

    @property
    def usage(self) -> dict[str, Any]:
        return dict(self.response.get("usage") or {})

    def well_formed(self) -> str | None:
        """None if the stream has the shape every client relies on; else what is wrong."""
        if self.first_event != "response.created":
            return f"the first event is {self.first_event}, not response.created"
        if self.terminal is None:
            return "the stream ended without response.completed, .incomplete or .failed"
        if self.rows[-1].name not in TERMINAL:
            return f"events came after {self.outcome}"
        if self.outcome == "response.completed" and not self.response.get("id"):
            return "response.completed carries no response.id (Codex needs it)"
        return None

    def ttft_s(self) -> float | None:
        return self.first_delta_at

    def tokens_per_s(self) -> float | None:
        tokens = self.usage.get("output_tokens")
        if not tokens or self.first_delta_at is None or self.last_delta_at is None:
            return None
        span = self.last_delta_at - self.first_delta_at
        # The first token's time is the TTFT; the rate counts the tokens after it.
        return (tokens - 1) / span if span > 0 and tokens > 1 else None

    def total_s(self) -> float | None:
        """From the request to the terminal event: prompt, generation and streaming together."""
        return self.rows[-1].last_at if self.terminal is not None else None

    def summary(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "total_s": self.total_s(),
            "outcome": self.outcome,
            "events": self.events,
            "ttft_s": self.ttft_s(),
            "tokens_per_s": self.tokens_per_s(),
            "input_tokens": usage.get("input_tokens"),
            "cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "text": self.texts.get("response.output_text.delta", ""),
            "reasoning": self.texts.get("response.reasoning_text.delta", ""),
            "error": self.response.get("error") or self.response.get("incomplete_details"),
        }


def _detail(data: dict[str, Any]) -> str:
    item = data.get("item")
    if isinstance(item, dict):
        return str(item.get("type", "")) + (f" {item['name']}" if item.get("name") else "")
    response = data.get("response")
    if isinstance(response, dict):
        error = response.get("error") or response.get("incomplete_details")
        return f"status {response.get('status')}" + (f": {error}" if error else "")
    return ""


def render(rows: Iterable[Row], width: int = 60) -> list[str]:
    lines = []
    for row in rows:
        when = f"{row.first_at * 1000:8.1f} ms"
        if row.count > 1 or row.text:
            shown = row.text.replace("\n", "\\n")
            shown = shown if len(shown) <= width else shown[: width - 1] + "…"
            lines.append(f"{when}  {row.name} ×{row.count} (until {row.last_at * 1000:.1f} ms) {shown!r}")
        else:
            lines.append(f"{when}  {row.name}" + (f" ({row.detail})" if row.detail else ""))
    return lines
