"""A generation fed by an engine's worker thread and read on an asyncio loop.

Both GPU-side engines (the plain TorchEngine and the PagedEngine) run the model on one worker
thread; this is the hand-over: the worker calls `deliver_threadsafe`, the daemon iterates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from codexpc.engine.api import TokenEvent


class ThreadedGeneration:
    """One sequence as the daemon sees it: async-iterate for tokens, cancel to free it."""

    def __init__(self, request_id: str, prompt_tokens: int, loop: asyncio.AbstractEventLoop,
                 on_cancel: Callable[[], None] = lambda: None) -> None:
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0  # an engine with a prefix cache sets it before the first token
        self._loop = loop
        self._events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        self._done = False  # touched on the loop thread only
        self._on_cancel = on_cancel  # tells the worker to free the sequence

    def deliver_threadsafe(self, event: TokenEvent) -> bool:
        """From the worker thread. False when the consumer's loop is gone."""
        try:
            self._loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop was closed under us: nobody is listening any more
            return False
        return True

    def _deliver(self, event: TokenEvent) -> None:
        if self._done:
            return  # a cancel already ended this generation
        self._done = event.finish_reason is not None
        self._events.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        while True:
            event = await self._events.get()
            yield event
            if event.finish_reason is not None:
                return

    async def cancel(self) -> None:
        self._on_cancel()
        self._deliver(TokenEvent(None, "cancelled"))
