"""The smoke timeline: what counts as a well-formed stream, and the figures it reports."""

from __future__ import annotations

from codexpc.cli.link import SseEvent
from codexpc.cli.timeline import Timeline, render


def _timeline(*events: tuple[str, float, dict]) -> Timeline:
    line = Timeline()
    for name, at, extra in events:
        line.add(SseEvent(name, {"type": name, **extra}, at))
    return line


COMPLETED = {"response": {"id": "resp_1", "status": "completed",
                          "usage": {"input_tokens": 70, "output_tokens": 11,
                                    "input_tokens_details": {"cached_tokens": 64}}}}


def test_a_complete_stream_gives_ttft_and_rate() -> None:
    deltas = [("response.output_text.delta", 0.1 + i * 0.01, {"delta": "ab"}) for i in range(11)]
    line = _timeline(("response.created", 0.001, {}), *deltas, ("response.completed", 0.3, COMPLETED))
    assert line.well_formed() is None
    summary = line.summary()
    assert summary["ttft_s"] == 0.1
    assert round(summary["tokens_per_s"]) == 100  # 10 tokens after the first, in 0.1 s
    assert summary["cached_tokens"] == 64 and summary["text"] == "ab" * 11
    rows = render(line.rows)
    assert len(rows) == 3 and "×11" in rows[1]


def test_streams_clients_would_reject() -> None:
    no_end = _timeline(("response.created", 0.0, {}), ("response.output_text.delta", 0.1, {"delta": "x"}))
    assert "without response.completed" in (no_end.well_formed() or "")
    no_id = _timeline(("response.created", 0.0, {}), ("response.completed", 0.1, {"response": {}}))
    assert "response.id" in (no_id.well_formed() or "")
    late = _timeline(("response.created", 0.0, {}), ("response.completed", 0.1, COMPLETED),
                     ("response.output_text.delta", 0.2, {"delta": "x"}))
    assert "after response.completed" in (late.well_formed() or "")
    wrong_start = _timeline(("response.in_progress", 0.0, {}), ("response.completed", 0.1, COMPLETED))
    assert "not response.created" in (wrong_start.well_formed() or "")


def test_a_failed_stream_is_well_formed_and_carries_its_error() -> None:
    failed = {"response": {"id": "r", "status": "failed", "error": {"code": "invalid_model_output"}}}
    line = _timeline(("response.created", 0.0, {}), ("response.failed", 0.5, failed))
    assert line.well_formed() is None
    assert line.outcome == "response.failed" and line.summary()["error"] == {"code": "invalid_model_output"}
    assert line.tokens_per_s() is None and line.total_s() == 0.5
