"""VllmGeneration: one request forwarded to the back ends, read as codexpc's TokenEvents.

A task started at submit does the HTTP work and appends to a list that ready() hands over
whole, so every token that arrived together is read together (the session writes them as one
chunk). No admission event: vLLM tells its prefix-cache hit only in its last (usage) chunk, after
the contract's first event; the count is logged when the generation ends. Until the first token is delivered a failed back end is skipped for the next one in the
router's order; after it, a failure ends the generation with an error event, since another
back end would start a different answer. cancel() cancels the task, which closes the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codexpc.engine.api import FinishReason, SamplingParams, TokenEvent
from codexpc.engine.vllm.backend import Backend
from codexpc.engine.vllm.stream import BackendFault, RequestRejected, stream_deltas
from codexpc.engine.vllm.wire import Delta

if TYPE_CHECKING:
    from codexpc.engine.vllm.engine import VllmEngine

log = logging.getLogger("codexpc.engine.vllm")


class VllmGeneration:
    """A running remote sequence. Iterate it once."""

    def __init__(self, engine: VllmEngine, prompt: Sequence[int], params: SamplingParams, request_id: str) -> None:
        self.request_id = request_id
        self.prompt_tokens = len(prompt)
        self.cached_tokens: int | None = None  # vLLM's count, when its usage chunk reports one (logged)
        self.backend: Backend | None = None  # the one that is (or was) answering
        self._engine = engine
        self._prompt = list(prompt)
        self._params = params
        self._ready: deque[TokenEvent] = deque()  # produced, not read yet
        self._waiter: asyncio.Future[None] | None = None  # the reader's, while _ready is empty
        self._produced = 0
        self._held: TokenEvent | None = None  # the last event, held until the stream ends (usage comes after it)
        self._final = False  # a last event is in the queue
        self.finish_reason: FinishReason | None = None  # the last event's, once it is queued
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"vllm {request_id}")

    async def ready(self) -> list[TokenEvent]:
        if not self._ready:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        events = list(self._ready)
        self._ready.clear()
        return events

    @property
    def done(self) -> bool:
        return self._final

    async def cancel(self) -> None:
        if self._final:
            return
        self._finish(TokenEvent(None, "cancelled"))  # first: the task ends as cancelled, not finished
        self._task.cancel()
        await asyncio.wait([self._task])  # the stream is closed when this returns
        self._engine.generation_ended(self)  # also when the task was cancelled before it ran

    # -- the forwarding task --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._forward()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: the stream still ends, with the reason
            log.exception("request=%s vllm forwarding failed", self.request_id)
            self._finish(TokenEvent(None, "error", error=f"{type(exc).__name__}: {exc}"))
        finally:
            self._engine.generation_ended(self)

    async def _forward(self) -> None:
        if self._params.max_new_tokens == 0:
            self._finish(TokenEvent(None, "length"))
            return
        tried: list[str] = []
        for backend in self._engine.candidates(self._params.routing_key):
            try:
                await self._from(backend)
                return
            except RequestRejected as exc:
                self._finish(TokenEvent(None, "error", error=f"{backend.url}: {exc}"))
                return
            except BackendFault as exc:
                delay = self._engine.backend_failed(backend, str(exc))
                log.warning("request=%s vllm backend=%s failed, out for %.1fs: %s", self.request_id,
                            backend.url, delay, exc)
                if self._held is not None:  # cut after its last chunk: the answer is whole
                    self._finish(self._held)
                    return
                if self._produced:  # the answer has begun: it cannot move
                    self._finish(TokenEvent(None, "error", error=f"vLLM back end {backend.url} failed "
                                                                 f"mid-stream: {exc}"))
                    return
                tried.append(f"{backend.url}: {exc}")
        self._finish(TokenEvent(None, "error", error=self._engine.unavailable_message(tried)))

    async def _from(self, backend: Backend) -> None:
        self.backend = backend
        backend.in_flight += 1
        backend.requests += 1
        log.info("request=%s vllm backend=%s route=%s key=%s", self.request_id, backend.url,
                 backend.route or "generate?", "yes" if self._params.routing_key else "no")
        try:
            async for delta in stream_deltas(self._engine.client, backend, self._prompt, self._params,
                                             self.request_id):
                backend.succeeded()  # it answers in vLLM's format
                self._take(delta)
        finally:
            backend.in_flight -= 1
        if self._held is None:
            raise BackendFault("the stream ended without a finish reason")
        self._finish(self._held)

    def _take(self, delta: Delta) -> None:
        if delta.cached_tokens is not None:
            self.cached_tokens = delta.cached_tokens
        if self._held is not None:  # after the finish only the usage chunk counts
            return
        ids = delta.token_ids
        for token in ids[:-1] if delta.finish_reason else ids:
            self._put(TokenEvent(token))
        if delta.finish_reason is not None:
            last = ids[-1] if ids else None
            self._produced += last is not None
            reason, error = self._finish_reason(delta.finish_reason)
            self._held = TokenEvent(last, reason, error)

    def _put(self, event: TokenEvent) -> None:
        self._produced += 1
        self._push(event)

    def _push(self, event: TokenEvent) -> None:
        self._ready.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _finish_reason(self, vllm_reason: str) -> tuple[FinishReason, str | None]:
        produced = self._produced
        if vllm_reason == "stop":
            return "stop", None
        if vllm_reason == "length":
            full = self.prompt_tokens + produced >= self._engine.info.context_length
            return ("context" if full and produced < self._params.max_new_tokens else "length"), None
        return "error", f"vLLM ended the generation with finish_reason {vllm_reason!r}"

    def _finish(self, event: TokenEvent) -> None:
        if not self._final:
            self._final = True
            self.finish_reason = event.finish_reason
            self._push(event)
            if self.backend is not None:
                log.info("request=%s vllm end backend=%s finish=%s tokens=%d cached_tokens=%s", self.request_id,
                         self.backend.url, event.finish_reason, self._produced, self.cached_tokens)
