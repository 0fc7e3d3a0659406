"""Counters for GET /metrics, rendered in the Prometheus text format (version 0.0.4).

Plain Python counters: one process, one event loop, so no locks are needed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Seconds; time to first token spans a cached short prompt to a cold 100k-token one.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{bound}"}} {n}' for bound, n in zip(self.buckets, self.counts, strict=True)]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.total}")
        out.append(f"{name}_count {self.count}")
        return out


@dataclass
class Metrics:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, outcome)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    in_flight: int = 0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    decode_tokens_per_s: float = 0.0  # of the last finished request
    # Output that broke Harmony or a tool's schema although its request was constrained
    # (codexpc/constrain/): the decoder's validation caught what the grammar let through. Must stay 0.
    constraint_violations: int = 0

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self, route: str, outcome: str, prompt: int, cached: int, completion: int,
                         reasoning: int, ttft_s: float | None, decode_s: float) -> None:
        self.in_flight -= 1
        self.requests[(route, outcome)] += 1
        self.prompt_tokens += prompt
        self.cached_tokens += cached
        self.completion_tokens += completion
        self.reasoning_tokens += reasoning
        if ttft_s is not None:
            self.ttft.observe(ttft_s)
        if completion > 1 and decode_s > 0:
            self.decode_tokens_per_s = (completion - 1) / decode_s

    def constraint_violation(self) -> None:
        """A constrained request's decoder reported a DecodeError or an invalid tool call."""
        self.constraint_violations += 1

    def render(self, engine_stats: Mapping[str, Any], uptime_s: float) -> str:
        lines = ["# TYPE codexpc_requests_total counter"]
        for (route, outcome), n in sorted(self.requests.items()):
            lines.append(f'codexpc_requests_total{{route="{route}",outcome="{outcome}"}} {n}')
        lines += _counter("codexpc_prompt_tokens_total", self.prompt_tokens)
        lines += _counter("codexpc_cached_prompt_tokens_total", self.cached_tokens)
        lines += _counter("codexpc_completion_tokens_total", self.completion_tokens)
        lines += _counter("codexpc_reasoning_tokens_total", self.reasoning_tokens)
        lines += _counter("codexpc_constraint_violations_total", self.constraint_violations)
        lines += _gauge("codexpc_requests_in_flight", self.in_flight)
        lines += _gauge("codexpc_decode_tokens_per_second", self.decode_tokens_per_s)
        lines += _gauge("codexpc_uptime_seconds", uptime_s)
        lines.append("# TYPE codexpc_time_to_first_token_seconds histogram")
        lines += self.ttft.lines("codexpc_time_to_first_token_seconds")
        for key, value in sorted(engine_stats.items()):
            # Engine numbers (running, waiting, prefix-cache hits, memory) as gauges.
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            lines += _gauge(f"codexpc_engine_{_metric_name(key)}", value)
        lines += _backend_lines(engine_stats.get("backends"))
        return "\n".join(lines) + "\n"


def _backend_lines(backends: Any) -> list[str]:
    """A remote engine's back ends (engine "vllm"): each number as a gauge labelled by url."""
    if not isinstance(backends, list):
        return []
    rows = [b for b in backends if isinstance(b, dict) and isinstance(b.get("url"), str)]
    names = sorted({k for b in rows for k, v in b.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    lines: list[str] = []
    for key in names:
        name = f"codexpc_engine_backend_{_metric_name(key)}"
        lines.append(f"# TYPE {name} gauge")
        for b in rows:
            if isinstance(b.get(key), int | float) and not isinstance(b[key], bool):
                url = b["url"].replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{name}{{backend="{url}"}} {b[key]}')
    return lines


def render_startup(state: str, loading_s: float) -> str:
    """GET /metrics before the engine is ready: no counters yet, only what the daemon is doing."""
    lines = _gauge("codexpc_model_loading", 1 if state == "loading" else 0)
    lines += _gauge("codexpc_model_load_failed", 1 if state == "failed" else 0)
    lines += _gauge("codexpc_model_loading_seconds", round(loading_s, 3))
    return "\n".join(lines) + "\n"


def _metric_name(key: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in key).lower()


def _counter(name: str, value: float) -> list[str]:
    return [f"# TYPE {name} counter", f"{name} {value}"]


def _gauge(name: str, value: float) -> list[str]:
    return [f"# TYPE {name} gauge", f"{name} {value}"]
