"""One request: render -> submit to the engine -> decode -> Harmony events -> the client's bytes.

The session owns the one stream driver: `stream(translator)` writes a streaming response,
`drain(translator)` runs a non-streaming one; the translator (server/translators.py) turns
decoder events into the API's events, for the Responses API and Chat Completions alike.

The log lines are a stable, greppable contract (logger "codexpc.session"), one per step:
  request=ID harmony append tokens=N user_parts=M messages=K dropped_reasoning=D
  request=ID decoder start tools=T constrained=yes|no
  request=ID stream start temperature=F top_p=F max_tokens=N prompt_tokens=N cached_tokens=N
  request=ID first token id=N ms=F
  request=ID first delta len=N kind=K
  request=ID end reason=R status=S tokens=N ms=F
"stream start" is written when the engine admits the sequence (its prefix-cache hit is known
then), or at its first token from an engine that sends no admission.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio

from codexpc.engine.api import FinishReason, Generation, SamplingParams, TokenEvent
from codexpc.errors import CodexpcError
from codexpc.harmony.decoder import HarmonyDecoder, stop_token_ids
from codexpc.harmony.events import (
    CustomToolInputDone,
    DecodeError,
    Event,
    MessageDone,
    MessageKind,
    MessageStarted,
    Stop,
    TextDelta,
    ToolArgumentsDone,
    merge_deltas,
)
from codexpc.harmony.render import RenderedPrompt
from codexpc.server.request import OutputShape, Sampling
from codexpc.server.runtime import Lease, Runtime
from codexpc.server.translators import Translator
from codexpc.server.usage import StreamEnd, Usage

if TYPE_CHECKING:  # llguidance is loaded only where constrained decoding is on
    from codexpc.constrain.matcher import Constraint

log = logging.getLogger("codexpc.session")


class Session:
    """Runs one request on the runtime's current engine; close() always, exactly once."""

    def __init__(self, runtime: Runtime, route: str, request_id: str) -> None:
        self.runtime = runtime
        self.route = route
        self.request_id = request_id
        self._lease: Lease | None = None
        self._generation: Generation | None = None
        self._decoder: HarmonyDecoder | None = None
        self._params: SamplingParams | None = None
        self._started = time.monotonic()
        self._first_token_at: float | None = None
        self._first_delta = False
        self._kind: MessageKind | None = None
        self.cached_tokens: int | None = None  # from the engine's admission; None: not admitted yet
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.finish_reason: FinishReason | None = None  # the engine's
        self.stop_reason: str | None = None  # the decoder's
        self.engine_error: str | None = None
        self._closed = False
        runtime.metrics.request_started()

    async def start(self, render: Callable[[], RenderedPrompt], sampling: Sampling,
                    shape: OutputShape | None = None) -> None:
        """Render, constrain and submit; a refusal here is an HTTP error, before any stream begins."""
        try:
            self._lease = self.runtime.acquire()
            constrainer, shape = self._lease.constrainer, shape or OutputShape()

            def prepare() -> tuple[RenderedPrompt, Constraint | None]:
                rendered = render()
                if constrainer is None:
                    return rendered, None
                return rendered, constrainer.constraint(rendered.registry, shape.text_format, shape.tool_choice)

            # In a worker thread: a Codex turn renders ~40 KB of tools and instructions (tens of
            # ms), its grammar compiles the first time (tens of ms), and the loop must keep
            # streaming other requests' tokens meanwhile.
            rendered, constraint = await anyio.to_thread.run_sync(prepare)
            self.submit(rendered, sampling, constraint, shape.routing_key)
        except CodexpcError as exc:
            await self.close(exc.code)
            raise
        except BaseException:
            await self.close("error")
            raise

    def submit(self, rendered: RenderedPrompt, sampling: Sampling, constraint: Constraint | None = None,
               routing_key: str | None = None) -> None:
        """Submit the prompt. Raises (ContextLengthError, ...) before anything is streamed."""
        rid = self.request_id
        log.info("request=%s harmony append tokens=%d user_parts=%d messages=%d dropped_reasoning=%d", rid,
                 len(rendered.tokens), rendered.user_parts, rendered.messages, rendered.dropped_reasoning)
        if rendered.skipped_tools:
            log.info("request=%s tools skipped=%s", rid, ",".join(rendered.skipped_tools))
        if self._lease is None:
            self._lease = self.runtime.acquire()
        engine = self._lease.engine
        self._decoder = HarmonyDecoder(self.runtime.encoding, rendered.registry)
        log.info("request=%s decoder start tools=%d constrained=%s", rid, len(rendered.registry.names()),
                 "yes" if constraint is not None else "no")
        room = engine.info.context_length - len(rendered.tokens)
        caps = [n for n in (sampling.max_output_tokens, room) if n is not None]
        self._params = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
                                      max_new_tokens=max(0, min(caps)),
                                      stop_token_ids=stop_token_ids(self.runtime.encoding),
                                      routing_key=routing_key, constraint=constraint)
        self._generation = engine.submit(rendered.tokens, self._params, rid)

    # -- the one stream driver ------------------------------------------------------------------

    async def stream(self, translator: Translator) -> AsyncIterator[bytes]:
        """A streaming response's bytes: one write per engine step (a socket write costs more
        than the rest of a token's work), then the terminal events."""
        try:
            yield translator.frames(translator.start())
            async for events in self.steps():
                frames = translator.frames([out for event in events for out in translator.feed(event)])
                if frames:
                    yield frames
                if translator.failure is not None:
                    break  # a refused tool call ends the response now; close() cancels the rest
            yield translator.frames(translator.finish(self.end())) + translator.trailer()
        finally:
            await self.close(translator.outcome())

    async def drain(self, translator: Translator) -> None:
        """A non-streaming response: the same translation, nothing written until the end."""
        translator.start()
        async for events in self.steps():
            for event in events:
                translator.feed(event)
            if translator.failure is not None:
                break
        translator.finish(self.end())

    def end(self) -> StreamEnd:
        return StreamEnd(self.usage(), self.engine_error, self.finish_reason == "cancelled")

    async def steps(self) -> AsyncIterator[list[Event]]:
        """The decoder's events in non-empty lists, the last ending with a Stop.

        One list holds every token the engine had delivered when the previous list was
        written, its deltas merged: a daemon that fell behind (a slow client, a busy loop)
        writes once for all of them and so catches up, instead of paying per token.
        """
        assert self._generation is not None and self._decoder is not None, "start() first"
        generation = self._generation
        try:
            while True:
                events, done = self._take(await generation.ready())
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
        if self.cached_tokens is None:
            self._admitted(step.cached_tokens or 0)
            if step.is_admission:
                return []
        elif step.is_admission:
            return []
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

    def _check_constrained(self, event: Event) -> None:
        """A constrained turn's output that the decoder still refused: the grammar let it
        through (a bug of ours, or a matcher that switched itself off). Counted; must stay 0."""
        if self._params is None or self._params.constraint is None:
            return
        if isinstance(event, DecodeError) or (isinstance(event, ToolArgumentsDone | CustomToolInputDone)
                                              and event.error is not None):
            self.runtime.metrics.constraint_violation()
            log.warning("request=%s constrained output refused by the decoder: %s", self.request_id, event)

    def _admitted(self, cached_tokens: int) -> None:
        self.cached_tokens = cached_tokens
        p, generation = self._params, self._generation
        assert p is not None and generation is not None
        log.info("request=%s stream start temperature=%s top_p=%s max_tokens=%d prompt_tokens=%d cached_tokens=%d",
                 self.request_id, p.temperature, p.top_p, p.max_new_tokens, generation.prompt_tokens, cached_tokens)

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
        elif isinstance(event, DecodeError | ToolArgumentsDone | CustomToolInputDone):
            self._check_constrained(event)

    def usage(self) -> Usage:
        generation = self._generation
        prompt = generation.prompt_tokens if generation else 0
        return Usage(prompt, self.cached_tokens or 0, self.output_tokens, self.reasoning_tokens)

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
