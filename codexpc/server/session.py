"""One request: render -> submit to the engine -> decode -> Harmony events, with its log lines.

The log lines are a stable, greppable contract (logger "codexpc.session"), one per step:
  request=ID harmony append tokens=N user_parts=M messages=K dropped_reasoning=D
  request=ID decoder start tools=T
  request=ID stream start temperature=F top_p=F max_tokens=N prompt_tokens=N cached_tokens=N
  request=ID first token id=N ms=F
  request=ID first delta len=N kind=K
  request=ID end reason=R status=S tokens=N ms=F
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Generator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from codexpc.engine.api import FinishReason, Generation, SamplingParams, TokenEvent
from codexpc.engine.threaded_generation import ThreadedGeneration
from codexpc.errors import RequestError
from codexpc.harmony.decoder import HarmonyDecoder, stop_token_ids
from codexpc.harmony.events import (
    Event,
    MessageDone,
    MessageKind,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDelta,
)
from codexpc.harmony.render import RenderedPrompt
from codexpc.server.runtime import Lease, RequestLimits, Runtime

log = logging.getLogger("codexpc.session")

T = TypeVar("T")

# What a torch.Generator takes (a signed or unsigned 64-bit integer); a bigger seed overflows it.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def new_id(prefix: str) -> str:
    """A request or item id: "resp_…", "msg_…", "call_…"."""
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    cached_tokens: int  # prompt tokens whose KV came from the prefix cache
    output_tokens: int
    reasoning_tokens: int  # output tokens inside analysis messages


@dataclass(frozen=True)
class SamplingRequest:
    """The sampling options a request asked for, checked; None: the server's default."""

    max_output_tokens: int | None = None
    temperature: float = 1.0  # gpt-oss's recommended sampling: temperature 1, top_p 1
    top_p: float = 1.0
    seed: int | None = None


def _number(body: Mapping[str, Any], key: str, low: float, high: float, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{key} must be a number", param=key)
    if not low <= value <= high:
        raise RequestError(f"{key} must be between {low} and {high}", param=key)
    return float(value)


def _count(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{key} must be a positive integer", param=key)
    return value


def sampling_from_body(body: Mapping[str, Any], limits: RequestLimits, *max_keys: str) -> SamplingRequest:
    """Sampling options of a Responses (`max_output_tokens`) or Chat (`max_tokens`...) body."""
    caps = []
    for key in max_keys:
        requested = _count(body, key)
        if requested is not None:
            limits.check_output_tokens(requested, key)
            caps.append(requested)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("seed must be an integer", param="seed")
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise RequestError(f"seed must be between {SEED_MIN} and {SEED_MAX}", param="seed")
    top_p = _number(body, "top_p", 0.0, 1.0, 1.0)
    if top_p == 0:
        raise RequestError("top_p must be greater than 0", param="top_p")
    return SamplingRequest(max_output_tokens=min(caps) if caps else limits.default_max_output_tokens,
                           temperature=_number(body, "temperature", 0.0, 2.0, 1.0), top_p=top_p, seed=seed)


def merge_deltas(events: list[Event]) -> list[Event]:
    """Consecutive deltas of one message as one delta."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if type(event) is TextDelta and type(last) is TextDelta and last.kind == event.kind:
            merged[-1] = TextDelta(event.kind, event.channel, last.text + event.text)
        elif (type(event) is ToolArgumentsDelta and type(last) is ToolArgumentsDelta
              and last.recipient == event.recipient):
            merged[-1] = ToolArgumentsDelta(event.recipient, last.text + event.text)
        else:
            merged.append(event)
    return merged


async def batched(source: AsyncIterable[T]) -> AsyncGenerator[list[T], None]:
    """The items of `source` in lists of those that were ready together.

    After each item, the next is started at once: if the source has it (an engine's queue
    already holds it), it joins the list; if the source must wait, the list goes out and the
    wait resumes when the next list is asked for. An engine's queue is read the same way.
    """
    items = aiter(source)
    waiting: _Resumed | None = None
    try:
        while True:
            resumed, waiting = waiting, None  # awaited now: a cancellation ends it there
            try:
                batch = [await (resumed or anext(items))]
            except StopAsyncIteration:
                return
            while waiting is None:
                step = items.__anext__()
                try:
                    blocked_on = step.send(None)  # type: ignore[attr-defined]
                except StopIteration as ready:
                    batch.append(ready.value)
                except StopAsyncIteration:
                    yield batch
                    return
                else:
                    waiting = _Resumed(step, blocked_on)
            yield batch
    finally:
        if waiting is not None:  # the consumer left: end the source's wait as a cancel would
            waiting.cancel()


class _Resumed:
    """The rest of a coroutine stepped by hand until it first had to wait, to be awaited."""

    def __init__(self, coroutine: Any, blocked_on: Any) -> None:
        self._coroutine = coroutine
        self._blocked_on = blocked_on

    def cancel(self) -> None:
        """End the wait as a task's cancellation would, so the source's own cleanup runs."""
        try:
            self._coroutine.throw(asyncio.CancelledError())
        except (asyncio.CancelledError, StopIteration, StopAsyncIteration):
            return
        self._coroutine.close()  # it caught the cancellation and waits again: give up on it

    def __await__(self) -> Generator[Any, Any, Any]:
        blocked_on = self._blocked_on
        while True:
            try:
                sent = yield blocked_on
            except BaseException as exc:  # a cancellation: the coroutine handles it as if awaited
                try:
                    blocked_on = self._coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    blocked_on = self._coroutine.send(sent)
                except StopIteration as done:
                    return done.value


class Session:
    """Runs one request on the runtime's current engine; close() always, exactly once."""

    def __init__(self, runtime: Runtime, route: str, request_id: str) -> None:
        self.runtime = runtime
        self.route = route
        self.request_id = request_id
        self._lease: Lease | None = None
        self._generation: Generation | None = None
        self._decoder: HarmonyDecoder | None = None
        self._started = time.monotonic()
        self._first_token_at: float | None = None
        self._first_delta = False
        self._kind: MessageKind | None = None
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.finish_reason: FinishReason | None = None  # the engine's
        self.stop_reason: str | None = None  # the decoder's
        self.engine_error: str | None = None
        self._closed = False
        runtime.metrics.request_started()

    def start(self, rendered: RenderedPrompt, sampling: SamplingRequest) -> None:
        """Submit the prompt. Raises (ContextLengthError, ...) before anything is streamed."""
        rid = self.request_id
        log.info("request=%s harmony append tokens=%d user_parts=%d messages=%d dropped_reasoning=%d", rid,
                 len(rendered.tokens), rendered.user_parts, rendered.messages, rendered.dropped_reasoning)
        if rendered.skipped_tools:
            log.info("request=%s tools skipped=%s", rid, ",".join(rendered.skipped_tools))
        self.runtime.limits.check_queue(self.runtime.engine.stats(), self.runtime.in_flight)
        self._lease = self.runtime.acquire()
        engine = self._lease.engine
        self._decoder = HarmonyDecoder(self.runtime.encoding, rendered.registry)
        log.info("request=%s decoder start tools=%d", rid, len(rendered.registry.names()))
        room = engine.info.context_length - len(rendered.tokens)
        caps = [n for n in (sampling.max_output_tokens, room) if n is not None]
        params = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
                                max_new_tokens=max(0, min(caps)),
                                stop_token_ids=stop_token_ids(self.runtime.encoding))
        self._generation = engine.submit(rendered.tokens, params, rid)
        log.info("request=%s stream start temperature=%s top_p=%s max_tokens=%d prompt_tokens=%d cached_tokens=%d",
                 rid, params.temperature, params.top_p, params.max_new_tokens, self._generation.prompt_tokens,
                 self._generation.cached_tokens)

    async def steps(self) -> AsyncIterator[list[Event]]:
        """The decoder's events in non-empty lists, the last ending with a Stop.

        One list holds every token the engine had delivered when the previous list was
        written, its deltas merged: a daemon that fell behind (a slow client, a busy loop)
        writes once for all of them and so catches up, instead of paying per token.
        """
        assert self._generation is not None and self._decoder is not None, "start() first"
        generation = self._generation
        try:
            if isinstance(generation, ThreadedGeneration):  # hands over what is ready itself, cheaper
                while True:
                    events, done = self._take(await generation.ready())
                    if events:
                        yield events
                    if done:
                        return
            async with aclosing(batched(generation)) as batches:
                async for ready in batches:
                    events, done = self._take(ready)
                    if events:
                        yield events
                    if done:  # after the decoder's Stop nothing counts; close() cancels what still runs
                        return
        except Exception as exc:  # an engine bug must still end the stream with a failed response
            log.exception("request=%s engine raised", self.request_id)
            yield self._step(TokenEvent(None, "error", error=f"engine failure: {exc!r}"))

    def _take(self, ready: list[TokenEvent]) -> tuple[list[Event], bool]:
        """The events of the steps that were ready together, and whether generation ended."""
        if len(ready) == 1:  # the usual case: the daemon keeps up with the engine
            step = ready[0]
            return self._step(step), step.finish_reason is not None or self.stop_reason is not None
        events: list[Event] = []
        for step in ready:
            events += self._step(step)
            if step.finish_reason is not None or self.stop_reason is not None:
                return merge_deltas(events), True
        return merge_deltas(events), False

    async def events(self) -> AsyncIterator[Event]:
        """The decoder's events, token by token, ending with a Stop."""
        async for events in self.steps():
            for event in events:
                yield event

    def _step(self, step: TokenEvent) -> list[Event]:
        assert self._decoder is not None
        events: list[Event] = []
        if step.token_id is not None:
            self._on_token(step.token_id)
            events = self._decoder.feed(step.token_id)
        if step.finish_reason is not None:
            self.finish_reason = step.finish_reason
            self.engine_error = step.error
            events = events + self._decoder.finish(step.finish_reason)
        for event in events:
            if type(event) is not TextDelta or not self._first_delta:  # the per-token case: nothing to note
                self._on_event(event)
        return events

    def _on_token(self, token_id: int) -> None:
        self.output_tokens += 1
        if self._kind == "reasoning":
            self.reasoning_tokens += 1
        if self._first_token_at is None:
            self._first_token_at = time.monotonic()
            log.info("request=%s first token id=%d ms=%.1f", self.request_id, token_id, self._ms(self._first_token_at))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageStarted):
            self._kind = event.kind
        elif isinstance(event, MessageDone):
            self._kind = None
        elif isinstance(event, TextDelta) and not self._first_delta:
            self._first_delta = True
            log.info("request=%s first delta len=%d kind=%s", self.request_id, len(event.text), event.kind)
        elif isinstance(event, Stop):
            self.stop_reason = event.reason

    def usage(self) -> Usage:
        generation = self._generation
        prompt = generation.prompt_tokens if generation else 0
        cached = generation.cached_tokens if generation else 0
        return Usage(prompt, cached, self.output_tokens, self.reasoning_tokens)

    async def close(self, outcome: str | None = None) -> None:
        """Cancel the generation if it still runs, release the engine, log the end, count it."""
        if self._closed:
            return
        self._closed = True
        # Shielded: a client that went away cancels our task, and the cancel must still land.
        with anyio.CancelScope(shield=True):
            if self._generation is not None and self.finish_reason is None:
                await self._generation.cancel()
            if self._lease is not None:
                await self._lease.release()
        self._log_end(outcome or self._outcome())

    def _outcome(self) -> str:
        """The request's outcome for the log and metrics when the caller names none."""
        if self.stop_reason in ("return", "call"):
            return "completed"
        if self.stop_reason == "length":
            return "incomplete"
        if self.stop_reason is None and self.finish_reason in (None, "cancelled"):
            return "cancelled"
        return "failed"

    def _log_end(self, outcome: str) -> None:
        now = time.monotonic()
        usage = self.usage()
        ttft = self._first_token_at - self._started if self._first_token_at is not None else None
        decode_s = now - self._first_token_at if self._first_token_at is not None else 0.0
        reason = self.stop_reason or self.finish_reason or "cancelled"
        log.info("request=%s end reason=%s status=%s tokens=%d ms=%.1f", self.request_id, reason, outcome,
                 usage.output_tokens, self._ms(now))
        self.runtime.metrics.request_finished(self.route, outcome, usage.prompt_tokens, usage.cached_tokens,
                                              usage.output_tokens, usage.reasoning_tokens, ttft, decode_s)

    def _ms(self, at: float) -> float:
        return (at - self._started) * 1000.0
