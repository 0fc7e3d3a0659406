"""Runtime: what every request shares: the warm engine, the encoding, the models, the metrics.

The engine is swappable: `reload(new_engine)` makes new requests use the new engine at once,
while requests already running finish on the old one; the old engine is closed when the last
of them ends. (Before the first engine exists, server/startup.py answers instead.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import Engine
from codexpc.errors import ModelNotFoundError, UnavailableError
from codexpc.harmony.render import RenderOptions
from codexpc.server.admission import Admission, AdmissionLimits
from codexpc.server.metrics import Metrics
from codexpc.server.request import RequestLimits

if TYPE_CHECKING:  # llguidance is loaded only where constrained decoding is on
    from codexpc.constrain.turn import Constrainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """A model as clients name it: its name, its aliases, its context window."""

    name: str
    context_length: int
    aliases: tuple[str, ...] = ()
    created: int = 0  # unix seconds, for /v1/models

    def matches(self, requested: str) -> bool:
        return requested == self.name or requested in self.aliases


def default_aliases(name: str) -> tuple[str, ...]:
    """Ollama-style names as aliases: "gpt-oss-20b" is also "gpt-oss:20b"."""
    head, dash, size = name.rpartition("-")
    return (f"{head}:{size}",) if dash and head else ()


@dataclass
class _Slot:
    """One engine and the number of requests still using it."""

    engine: Engine
    constrainer: Constrainer | None = None  # the engine's constrained decoding; None: off
    in_flight: int = 0
    retired: bool = False
    closed: bool = False
    loaded_at: float = field(default_factory=time.time)


class Lease:
    """One request's hold on an engine; release() exactly once."""

    def __init__(self, runtime: Runtime, slot: _Slot) -> None:
        self._runtime = runtime
        self._slot = slot
        self._released = False
        self.engine = slot.engine
        self.constrainer = slot.constrainer

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self._runtime._release(self._slot)


class Runtime:
    """Holds the engine for the app; built by the daemon (or a test) and passed to create_app."""

    def __init__(self, engine: Engine, encoding: HarmonyEncoding, *, models: Sequence[ModelEntry] = (),
                 render_options: RenderOptions | None = None, config: Any = None,
                 limits: RequestLimits | None = None, max_output_tokens: int | None = None,
                 constrainer: Constrainer | None = None) -> None:
        self._slot = _Slot(engine, constrainer)
        self.encoding = encoding
        # Without a configured list, serve the engine's model under its own name.
        self.models: tuple[ModelEntry, ...] = tuple(models) or (
            ModelEntry(engine.info.model, engine.info.context_length, aliases=default_aliases(engine.info.model),
                       created=int(time.time())),)
        self.render_options = render_options or RenderOptions()
        self.config = config  # the daemon's DaemonConfig, kept opaque here
        self.limits = limits or RequestLimits()
        if max_output_tokens is not None:  # a shortcut for the one limit most callers set
            self.limits = replace(self.limits, max_output_tokens=max_output_tokens)
        self.metrics = Metrics()
        # Past max_in_flight requests wait in FIFO order (every Codex version keeps waiting);
        # past the queue they get a 503 that every version retries.
        self.admission = Admission(AdmissionLimits(
            self.limits.max_in_flight, 64 if self.limits.queue_size is None else self.limits.queue_size))
        self.started_at = time.time()
        self.reloads = 0

    @property
    def engine(self) -> Engine:
        """The engine new requests go to."""
        return self._slot.engine

    @property
    def constrainer(self) -> Constrainer | None:
        """The current engine's constrained decoding (None: off, or the engine takes no masks)."""
        return self._slot.constrainer

    @property
    def in_flight(self) -> int:
        return self._slot.in_flight

    def resolve_model(self, requested: str | None) -> ModelEntry:
        """The configured model a request names; no name means the first configured model."""
        if not requested:
            return self.models[0]
        for entry in self.models:
            if entry.matches(requested):
                return entry
        known = ", ".join(m.name for m in self.models)
        raise ModelNotFoundError(f"the model {requested!r} is not served here (models: {known})", param="model")

    def acquire(self) -> Lease:
        """The current engine, kept open until the lease is released, even across a reload."""
        slot = self._slot
        if slot.retired:  # only close() retires the current slot: the daemon is shutting down
            raise UnavailableError("the daemon is shutting down; retry in a moment")
        slot.in_flight += 1
        return Lease(self, slot)

    async def _release(self, slot: _Slot) -> None:
        slot.in_flight -= 1
        if slot.retired and slot.in_flight == 0:
            await self._close(slot)

    async def reload(self, new_engine: Engine, models: Sequence[ModelEntry] | None = None,
                     constrainer: Constrainer | None = None) -> None:
        """Send new requests to `new_engine`; the old one closes once its requests end."""
        old = self._slot
        self._slot = _Slot(new_engine, constrainer)
        if models:
            self.models = tuple(models)
        self.reloads += 1
        old.retired = True
        log.info("reload model=%s checkpoint=%s old_in_flight=%d", new_engine.info.model,
                 new_engine.info.checkpoint, old.in_flight)
        if old.in_flight == 0:
            await self._close(old)

    async def close(self) -> None:
        """Close the current engine (daemon shutdown)."""
        self._slot.retired = True
        await self._close(self._slot)

    async def _close(self, slot: _Slot) -> None:
        if slot.closed:
            return
        slot.closed = True
        log.info("engine close model=%s", slot.engine.info.model)
        await slot.engine.close()

    def uptime_s(self) -> float:
        return time.time() - self.started_at

    def loaded_at(self) -> float:
        return self._slot.loaded_at
