"""One vLLM server as codexpc sees it: up or out, what it is running, how often it failed.

A back end that fails (refused, timed out, 5xx, garbage, a stream cut short) is taken out for
a backoff that doubles with each consecutive failure, from retry_initial_s up to retry_max_s.
When the backoff has passed it is tried again by the next request routed to it; one clean
answer puts it back. There is no prober: an idle daemon sends nothing to an idle vLLM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from codexpc.engine.vllm.wire import Route

State = Literal["unknown", "up", "down"]


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.initial_s * 2 ** max(0, consecutive_failures - 1), self.max_s)


@dataclass
class Backend:
    url: str  # base URL, no trailing slash
    route: Route | None = None  # which API it speaks; found on its first request
    model_id: str | None = None  # what its /v1/models lists (sent as `model`)
    max_model_len: int | None = None
    state: State = "unknown"
    in_flight: int = 0
    requests: int = 0
    failures: int = 0  # every failure since start
    consecutive_failures: int = 0
    retry_at: float = 0.0  # time.monotonic() after which a "down" back end is tried again
    last_error: str | None = None

    def available(self, now: float) -> bool:
        return self.state != "down" or now >= self.retry_at

    def succeeded(self) -> None:
        self.state = "up"
        self.consecutive_failures = 0

    def failed(self, error: str, backoff: Backoff, now: float | None = None) -> float:
        """Take it out; returns the seconds until it is tried again."""
        now = time.monotonic() if now is None else now
        self.failures += 1
        self.consecutive_failures += 1
        self.state = "down"
        self.last_error = error
        delay = backoff.delay(self.consecutive_failures)
        self.retry_at = now + delay
        return delay

    def snapshot(self, now: float) -> dict[str, Any]:
        """For /health (every field) and /metrics (the numbers, labelled by url)."""
        return {
            "url": self.url,
            "state": self.state,
            "up": 0 if self.state == "down" else 1,
            "route": self.route,
            "model": self.model_id,
            "max_model_len": self.max_model_len,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "retry_in_s": round(max(0.0, self.retry_at - now), 3) if self.state == "down" else 0.0,
            "last_error": self.last_error,
        }
