"""Runtime: what every request shares: the warm engine, the encoding, the models, the metrics.

The engine is swappable: `reload(new_engine)` makes new requests use the new engine at once,
while requests already running finish on the old one; the old engine is closed when the last
of them ends.

Before the first engine exists, `Startup` says what the daemon is doing instead: loading a
model (since when), or why that load failed; the daemon's listeners answer from it meanwhile.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import Engine
from codexpc.errors import CodexpcError, ModelNotFoundError, OverloadedError, RequestError, UnavailableError
from codexpc.harmony.render import RenderOptions
from codexpc.server.errors import ModelLoadFailedError, ModelLoadingError, error_body
from codexpc.server.metrics import Metrics

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


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on what one request may ask for; beyond them a request gets a 4xx naming the field."""

    max_output_tokens: int | None = None  # the cap on a request's max_output_tokens; None: the context
    default_max_output_tokens: int | None = None  # when a request does not say; None: up to the context
    max_input_items: int | None = None
    max_tools: int | None = None
    max_tool_schema_bytes: int | None = None  # one tool's JSON schema, serialized
    queue_size: int | None = None  # sequences waiting in the engine beyond which new ones get a 429
    # Requests admitted at once (running or waiting), whatever the engine counts as waiting: an
    # engine that runs every sequence it is given (the torch engine) never reports one waiting.
    max_in_flight: int | None = None

    @classmethod
    def from_config(cls, limits: Any) -> RequestLimits:
        """From any object with these attributes (the daemon's LimitsConfig); missing ones stay None."""
        return cls(**{f.name: getattr(limits, f.name, None) for f in fields(cls)})

    def check_output_tokens(self, requested: int, param: str) -> None:
        if self.max_output_tokens is not None and requested > self.max_output_tokens:
            raise RequestError(f"{param} must be at most {self.max_output_tokens}", param=param)

    def check_body(self, body: Mapping[str, Any], items_key: str) -> None:
        """Counts and sizes of the request's items and tools."""
        items = body.get(items_key)
        if self.max_input_items is not None and isinstance(items, list) and len(items) > self.max_input_items:
            raise RequestError(f"{items_key} has {len(items)} items; at most {self.max_input_items} are accepted",
                               param=items_key)
        tools = body.get("tools")
        if not isinstance(tools, list):
            return
        if self.max_tools is not None and len(tools) > self.max_tools:
            raise RequestError(f"tools has {len(tools)} tools; at most {self.max_tools} are accepted", param="tools")
        if self.max_tool_schema_bytes is None:
            return
        for index, tool in enumerate(tools):
            if len(json.dumps(tool, separators=(",", ":"))) > self.max_tool_schema_bytes:
                raise RequestError(f"tools[{index}] is larger than {self.max_tool_schema_bytes} bytes",
                                   param=f"tools[{index}]")

    def check_queue(self, engine_stats: Mapping[str, Any], in_flight: int = 0) -> None:
        """Admission: a 429 (with Retry-After) when the engine's queue or the daemon is full."""
        waiting = engine_stats.get("waiting", 0)
        if self.queue_size is not None and isinstance(waiting, int) and waiting >= self.queue_size:
            raise OverloadedError(f"{waiting} requests are waiting already; retry later")
        if self.max_in_flight is not None and in_flight >= self.max_in_flight:
            raise OverloadedError(f"{in_flight} requests are running already (limits.max_in_flight); retry later")


@dataclass
class Startup:
    """The daemon before its first engine is ready: what it loads, since when, or why it failed."""

    model: str
    engine: str  # the engine kind being built
    checkpoint: str | None
    device: str
    started: float = field(default_factory=time.monotonic)
    failure: str | None = None  # why the load failed; the daemon exits soon after
    stopping: bool = False  # a stop signal came while loading
    # When a model request was last refused: after a failed load the daemon stays up while
    # clients keep coming back, so they learn why instead of finding no socket.
    last_request: float | None = None

    @property
    def state(self) -> Literal["loading", "failed"]:
        return "failed" if self.failure is not None else "loading"

    def loading_s(self) -> float:
        return time.monotonic() - self.started

    def refusal(self) -> CodexpcError:
        """What a request gets now: loading (retry soon), failed (why), or shutting down."""
        if self.failure is not None:
            return ModelLoadFailedError(
                f"the model {self.model} failed to load: {self.failure}. The daemon is exiting; see its log "
                "(`codexpc logs`), fix the checkpoint or the config, and start it again")
        if self.stopping:
            return UnavailableError("the daemon is shutting down; retry in a moment")
        return ModelLoadingError(
            f"the model {self.model} is still loading ({self.loading_s():.1f} s so far); "
            f"retry in {ModelLoadingError.retry_after_s} s")

    def refuse_request(self) -> CodexpcError:
        """The refusal of a model request, noting when it came."""
        self.last_request = time.monotonic()
        return self.refusal()

    def health(self) -> dict[str, Any]:
        """GET /health's body (with a 503): the state, the model, and the error a request gets."""
        refusal = self.refusal()
        return {"status": self.state, "model": self.model, "checkpoint": self.checkpoint, "device": self.device,
                "engine": {"kind": self.engine, "state": self.state, "loading_s": round(self.loading_s(), 3)},
                **error_body(str(refusal), refusal.http_status, refusal.code),
                "uptime_s": round(self.loading_s(), 3), "in_flight": 0, "reloads": 0}


def default_aliases(name: str) -> tuple[str, ...]:
    """Ollama-style names as aliases: "gpt-oss-20b" is also "gpt-oss:20b"."""
    head, dash, size = name.rpartition("-")
    return (f"{head}:{size}",) if dash and head else ()


@dataclass
class _Slot:
    """One engine and the number of requests still using it."""

    engine: Engine
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

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self._runtime._release(self._slot)


class Runtime:
    """Holds the engine for the app; built by the daemon (or a test) and passed to create_app."""

    def __init__(self, engine: Engine, encoding: HarmonyEncoding, *, models: Sequence[ModelEntry] = (),
                 render_options: RenderOptions | None = None, config: Any = None,
                 limits: RequestLimits | None = None, max_output_tokens: int | None = None) -> None:
        self._slot = _Slot(engine)
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
        self.started_at = time.time()
        self.reloads = 0

    @property
    def engine(self) -> Engine:
        """The engine new requests go to."""
        return self._slot.engine

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

    async def reload(self, new_engine: Engine, models: Sequence[ModelEntry] | None = None) -> None:
        """Send new requests to `new_engine`; the old one closes once its requests end."""
        old = self._slot
        self._slot = _Slot(new_engine)
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
