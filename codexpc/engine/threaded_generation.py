"""A generation fed by an engine's worker thread and read on an asyncio loop.

The paged engine runs the model on one worker thread; this is the hand-over: the worker calls
`deliver_threadsafe`, the daemon iterates.

Deliveries go through the loop's inbox: the worker appends to it, and only the append that
finds it empty wakes the loop (one call_soon_threadsafe, one write to the loop's self-pipe).
A batched engine delivers a whole step inside `one_wakeup()`, so its 64 tokens cost the loop
one wake-up, not 64; nothing waits for a batch to fill, the step's tokens are all there.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

from codexpc.engine.api import TokenEvent, admitted


class _Inbox:
    """One loop's deliveries from worker threads, handed over in one callback per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # weak: _inboxes is keyed by the loop and must not keep it
        self._lock = threading.Lock()
        self._pending: list[tuple[ThreadedGeneration, TokenEvent]] = []
        self._scheduled = False  # a _flush is on its way to the loop (or held by one_wakeup)

    def put(self, generation: ThreadedGeneration, event: TokenEvent) -> bool:
        """From a worker thread. False when the loop is gone: nobody will read the event."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            return False
        with self._lock:
            self._pending.append((generation, event))
            if self._scheduled:
                return True
            self._scheduled = True
        held = getattr(_held, "inboxes", None)
        if held is not None:
            held.add(self)  # the step's last delivery is not far behind: wake once, then
            return True
        return self.wake()

    def wake(self) -> bool:
        loop = self._loop()
        try:
            if loop is None:
                return False
            loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop was closed under us: nobody is listening any more
            return False
        return True

    def _flush(self) -> None:  # on the loop
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        for generation, event in batch:
            generation._deliver(event)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
_held = threading.local()  # .inboxes: the inboxes to wake when one_wakeup() ends, on this thread


def _inbox(loop: asyncio.AbstractEventLoop) -> _Inbox:
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _Inbox(loop)
    return inbox


@contextmanager
def one_wakeup() -> Iterator[None]:
    """On a worker thread: the deliveries made inside reach each loop in one wake-up, at the end.

    For a batched engine's step: its tokens are delivered in a Python loop of microseconds, and
    waking the event loop for each of them would cost the daemon more than the token's own work.
    """
    if getattr(_held, "inboxes", None) is not None:  # nested: the outer block wakes
        yield
        return
    _held.inboxes = inboxes = set[_Inbox]()
    try:
        yield
    finally:
        _held.inboxes = None
        for inbox in inboxes:
            inbox.wake()


class ThreadedGeneration:
    """One sequence as the daemon sees it: async-iterate for tokens, cancel to free it."""

    def __init__(self, request_id: str, prompt_tokens: int, loop: asyncio.AbstractEventLoop,
                 on_cancel: Callable[[], None] = lambda: None) -> None:
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0  # from the admission event, once it reached the loop
        self._admission_sent = False  # worker thread only
        self._loop = loop
        self._inbox = _inbox(loop)
        self._ready: deque[TokenEvent] = deque()  # delivered, not read yet (loop thread only)
        self._waiter: asyncio.Future[None] | None = None  # the reader's, while _ready is empty
        self._done = False  # touched on the loop thread only
        self._on_cancel = on_cancel  # tells the worker to free the sequence

    def deliver_threadsafe(self, event: TokenEvent) -> bool:
        """From the worker thread. False when the consumer's loop is gone."""
        return self._inbox.put(self, event)

    def admit_threadsafe(self, cached_tokens: int) -> None:
        """From the worker thread, each time the sequence is scheduled: the first time only, the
        admission event (how much of the prompt the prefix cache served) goes to the reader."""
        if not self._admission_sent:
            self._admission_sent = True
            self.deliver_threadsafe(admitted(cached_tokens))

    def deliver_now(self, event: TokenEvent) -> None:
        """On the loop thread (from submit): an event known before the worker sees the sequence."""
        self._deliver(event)

    def _deliver(self, event: TokenEvent) -> None:
        if self._done:
            return  # a cancel already ended this generation
        if event.cached_tokens is not None:
            self.cached_tokens = event.cached_tokens
        self._done = event.finish_reason is not None
        self._ready.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def ready(self) -> list[TokenEvent]:
        """Every event delivered and not read yet, at least one (waits only when there is none).

        A reader that fell behind gets all it missed at once and catches up in one write.
        """
        if not self._ready:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        events = list(self._ready)
        self._ready.clear()
        return events

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        while True:
            for event in await self.ready():
                if event.is_admission:
                    continue
                yield event
                if event.finish_reason is not None:
                    return

    async def cancel(self) -> None:
        self._on_cancel()
        self._deliver(TokenEvent(None, "cancelled"))
