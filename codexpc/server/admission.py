"""Admission: a bounded FIFO queue in front of the engine, and a hold while the model loads.

Codex 0.140-0.155 end the turn on the first 429 (they do not retry it), while every version
retries a 503 whose body says `server_is_overloaded`. So past `max_in_flight` a request waits
its turn here instead of being refused; only past the queue (or after waiting too long) does it
get that 503. A waiting client has sent its whole request and reads nothing until its turn, so
it is kept waiting on an open connection, not dropped; one that disconnects leaves the queue.

`Admission.admit()` is the coroutine form (a route awaits it before starting its session);
`AdmissionMiddleware` wraps an ASGI app so that each model request holds a place from its first
byte in to its last byte out. `HoldingSwitch` is the daemon's app switch that holds model
requests while the model loads (bounded) instead of answering 503 `model_loading` at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from codexpc.errors import UnavailableError
from codexpc.server.errors import error_response

log = logging.getLogger(__name__)

MODEL_PATHS = ("/v1/responses", "/v1/chat/completions")


class ServerOverloadedError(UnavailableError):
    """Every place is taken, running and queued: a 503 that every Codex version retries."""

    http_status = 503
    code = "server_is_overloaded"
    retry_after_s = 1


@dataclass(frozen=True)
class AdmissionLimits:
    max_in_flight: int | None = None  # requests running at once; None: no bound, no queue
    max_queued: int = 64  # requests waiting beyond them, in arrival order
    max_wait_s: float | None = 600.0  # a request waiting longer gets the 503; None: as long as it takes


class Ticket:
    """One admitted request's place; release() exactly once (further calls do nothing)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._hand_over()


class Admission:
    """At most `max_in_flight` requests hold a ticket; up to `max_queued` more wait in FIFO order."""

    def __init__(self, limits: AdmissionLimits) -> None:
        if limits.max_in_flight is not None and limits.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.limits = limits
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def admit(self) -> Ticket:
        """A ticket now, or after the requests ahead; ServerOverloadedError if the queue is full."""
        limit = self.limits.max_in_flight
        if limit is None or (self.running < limit and not self.queued):
            self.running += 1
            return Ticket(self)
        if self.queued >= self.limits.max_queued:
            raise ServerOverloadedError(f"{self.running} requests are running and {self.queued} waiting "
                                        "(limits.max_in_flight and the queue are full); retry shortly")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.limits.max_wait_s)
        except TimeoutError:
            self._leave(turn)
            raise ServerOverloadedError(f"waited {time.monotonic() - started:.0f} s in the queue; retry shortly") \
                from None
        except BaseException:  # the client left while waiting (cancelled)
            self._leave(turn)
            raise
        log.info("admission waited ms=%.1f running=%d queued=%d", (time.monotonic() - started) * 1000,
                 self.running, self.queued)
        return Ticket(self)

    def _leave(self, turn: asyncio.Future[None]) -> None:
        """A waiter gives up; if its turn had come already, the place goes to the next one."""
        if turn.done() and not turn.cancelled():
            self._hand_over()
        else:
            turn.cancel()

    def _hand_over(self) -> None:
        """A place is free: to the first waiter still waiting, else back to the pool."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # `running` stays: the place passes on
                return
        self.running -= 1


class AdmissionMiddleware:
    """Each model request (POST to `paths`) holds an admission ticket for its whole response."""

    def __init__(self, app: ASGIApp, admission: Admission, paths: Collection[str] = MODEL_PATHS) -> None:
        self.app = app
        self.admission = admission
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        try:
            ticket = await self.admission.admit()
        except ServerOverloadedError as exc:
            log.info("admission refused path=%s why=%s", scope.get("path"), exc)
            await error_response(exc)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            ticket.release()


class HoldingSwitch:
    """The daemon's ASGI switch: the loading app first, the real one once `ready()` is called.

    While loading, a model request waits up to `hold_s` for the real app (Codex 0.140 and 0.155
    give up after ~25 s of 503s, and a model load can take a minute); past that, or after a
    failed load, the loading app answers it (503 with Retry-After, or why the load failed).
    """

    def __init__(self, loading_app: ASGIApp, hold_s: float = 120.0, paths: Collection[str] = MODEL_PATHS) -> None:
        self.app = loading_app
        self.hold_s = hold_s
        self.paths = frozenset(paths)
        self._ready = asyncio.Event()
        self._failed = asyncio.Event()

    def ready(self, app: ASGIApp) -> None:
        self.app = app
        self._ready.set()

    def failed(self) -> None:
        """The load failed: stop holding, let the loading app say why."""
        self._failed.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (not self._ready.is_set() and self.hold_s > 0 and scope["type"] == "http"
                and scope.get("path") in self.paths):
            await self._hold()
        await self.app(scope, receive, send)

    async def _hold(self) -> None:
        waits = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._failed.wait())]
        try:
            await asyncio.wait(waits, timeout=self.hold_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

