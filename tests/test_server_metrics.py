"""Prometheus text: counters, the time-to-first-token histogram, engine numbers as gauges."""

from __future__ import annotations

from codexpc.server import sse
from codexpc.server.metrics import Metrics


def test_metrics_render_requests_tokens_ttft_and_engine_stats() -> None:
    metrics = Metrics()
    metrics.request_started()
    metrics.request_finished("responses", "completed", prompt=100, cached=60, completion=11, reasoning=4,
                             ttft_s=0.03, decode_s=0.5)
    metrics.request_started()
    metrics.request_finished("chat", "context_length_exceeded", 0, 0, 0, 0, None, 0.0)  # refused at submit
    text = metrics.render({"prefix_cache_hits": 3, "memory.allocated": 1.5e9, "state": "ready", "ok": True}, 12.0)
    lines = set(text.splitlines())
    assert 'codexpc_requests_total{route="responses",outcome="completed"} 1' in lines
    assert 'codexpc_requests_total{route="chat",outcome="context_length_exceeded"} 1' in lines
    assert {"codexpc_prompt_tokens_total 100", "codexpc_cached_prompt_tokens_total 60",
            "codexpc_completion_tokens_total 11", "codexpc_reasoning_tokens_total 4",
            "codexpc_requests_in_flight 0", "codexpc_decode_tokens_per_second 20.0"} <= lines
    assert {'codexpc_time_to_first_token_seconds_bucket{le="0.025"} 0',
            'codexpc_time_to_first_token_seconds_bucket{le="0.05"} 1',
            'codexpc_time_to_first_token_seconds_bucket{le="+Inf"} 1',
            "codexpc_time_to_first_token_seconds_count 1"} <= lines
    assert {"codexpc_engine_prefix_cache_hits 3", "codexpc_engine_memory_allocated 1500000000.0"} <= lines
    assert not any("state" in line or "engine_ok" in line for line in lines)  # only numbers are exported
    assert text.endswith("\n")


def test_sse_frames() -> None:
    assert sse.event({"a": 1}, "response.created") == b'event: response.created\ndata: {"a":1}\n\n'
    assert sse.event({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse.DONE == b"data: [DONE]\n\n"
