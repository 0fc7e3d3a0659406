"""The daemon: bind, serve both listeners, load the engine once, reload on SIGHUP, stop on SIGTERM.

The lifecycle follows uvicorn's: startup, a main loop inside signal handlers, then a graceful
shutdown with a deadline. One uvicorn server per transport runs in the one event loop, each
with the app behind its own SecurityMiddleware, so the transport a request came by is a fact
of the listener rather than a guess from the scope.

The listeners serve from the start. While the model loads (seconds to a minute) they answer
from server/startup.py's app: /health and every model request get a 503 saying "loading" (with
Retry-After) at once. When the load fails the daemon still exits with the error's exit code,
as a service manager expects; if clients asked during the load, it first answers them with the
reason until they stop asking (FAILED_LOAD_QUIET_S of silence, FAILED_LOAD_MAX_LINGER_S at most).

Shutdown (SIGTERM, SIGINT): stop accepting, let running streams finish for
limits.shutdown_timeout_s, then close the engine, which ends every remaining generation as
cancelled so each stream still sends its final event; what is left after a short grace is
cancelled. A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn

from codexpc import settings
from codexpc.config import DaemonConfig, ModelEntry, load_config
from codexpc.constrain.turn import Constrainer
from codexpc.efforts import level_of
from codexpc.engine.api import Engine
from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.errors import CodexpcError
from codexpc.harmony.encoding import load_encoding
from codexpc.harmony.render import RenderOptions
from codexpc.server import runtime as rt
from codexpc.server import transport
from codexpc.server.admission import HoldingSwitch
from codexpc.server.app import create_app
from codexpc.server.errors import ModelLoadingError
from codexpc.server.listeners import capture, uvicorn_config
from codexpc.server.request import RequestLimits
from codexpc.server.security import (
    ASGIApp,
    Policy,
    SecurityMiddleware,
    load_token,
    loopback_hosts,
)
from codexpc.server.startup import Startup, create_loading_app
from codexpc.store import ResponseStore, StoreConfig

log = logging.getLogger("codexpc.daemon")

EngineFactory = Callable[..., Engine]  # create_engine's signature
# After a failed load, when clients asked during the load: the daemon answers with the failure
# until no model request came for QUIET seconds (a loading answer's Retry-After plus a margin:
# the client told to come back has come back), MAX seconds at most, then exits.
FAILED_LOAD_QUIET_S = ModelLoadingError.retry_after_s + 1.0
FAILED_LOAD_MAX_LINGER_S = 30.0
RELEASE_HELD_S = 0.2  # for requests held while loading to reach the loading app after a failure


def serve(config: DaemonConfig, *, engine_factory: EngineFactory | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit code (0 after a clean shutdown).

    `engine_factory` defaults to codexpc.engine.factory.create_engine (tests pass their own).
    """
    try:
        config.require_servable()
        token = load_token(config.listen.token_file) if config.listen.token_file else None
        # Bind before loading: a second daemon must fail in a second, not after a 13 GB load.
        listeners = transport.bind_all(config.listen)
    except CodexpcError as exc:
        log.error("cannot start: %s", exc)
        return exc.exit_code
    try:
        log.info("kernel cache %s", settings.use_kernel_cache())  # a restart compiles nothing again
    except OSError as exc:  # a read-only cache folder costs compile time, not the daemon
        log.warning("no kernel cache (%s): every start compiles the GPU kernels again", exc)
    if engine_factory is None:
        # Imported only now: torch takes seconds to import, and "already running" should not.
        from codexpc.engine.factory import create_engine

        engine_factory = create_engine
    try:
        return asyncio.run(Daemon(config, listeners, token, engine_factory).run())
    finally:
        transport.close_all(listeners)


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        listeners: transport.Listeners,
        token: str | None,
        engine_factory: EngineFactory,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.token = token
        self.engine_factory = engine_factory
        self.stop = asyncio.Event()
        self.signals = 0  # SIGTERM/SIGINT seen; the second one forces the exit
        self.servers: list[uvicorn.Server] = []
        self.runtime: rt.Runtime | None = None
        entry = config.model
        self.startup = Startup(entry.name, entry.engine, str(entry.checkpoint) if entry.checkpoint else None,
                                  config.device)
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.switch: HoldingSwitch | None = None

    async def run(self) -> int:
        self._install_signals()
        # Model requests that come while the model loads wait for it (bounded), then go on.
        self.switch = switch = HoldingSwitch(create_loading_app(self.startup),
                                             self.config.limits.hold_while_loading_s)
        await self._start_servers(switch)
        loops = [asyncio.create_task(server.main_loop()) for server in self.servers]
        try:
            self.runtime = await self._build_runtime(self.config)
        except Exception as exc:  # any failure, ours or a bug: told to the clients, then exit
            return await self._fail_start(exc, loops)
        if self.stop.is_set():  # a signal came while the model was loading
            await self._stop_servers(loops)
            await self.runtime.close()
            return 0
        # Opened once per process and kept across reloads: the engine changes, the conversations stay.
        # TODO(lead): StoreConfig from DaemonConfig (a [store] table: folder, max_bytes, max_age_s, enabled).
        self.store = ResponseStore.open(StoreConfig())
        switch.ready(create_app(self.runtime, reload_hook=self.reload, store=self.store))
        log.info("ready model=%s", self.config.default_model)
        await self.stop.wait()
        await self._shutdown(loops)
        return 0

    async def _fail_start(self, exc: Exception, loops: list[asyncio.Task[None]]) -> int:
        """Log why the load failed; tell the clients that asked during the load, then exit."""
        if isinstance(exc, CodexpcError):
            log.error("cannot start: %s", exc)
            self.startup.failure, code = str(exc), exc.exit_code
        else:  # a bug in a loader: its traceback in the log, its one line to the clients
            log.exception("cannot start: the model failed to load")
            self.startup.failure, code = f"{type(exc).__name__}: {exc}", 1
        assert self.switch is not None
        self.switch.failed()  # the requests held for the load hear why now...
        await asyncio.sleep(RELEASE_HELD_S)  # ...and count as asked (startup.last_request)
        if self.startup.last_request is not None:
            log.info("answering requests with the failure until they stop, then exiting")
            await self._linger()
        await self._stop_servers(loops)
        return code

    async def _linger(self) -> None:
        until = time.monotonic() + FAILED_LOAD_MAX_LINGER_S
        while not self.stop.is_set():
            assert self.startup.last_request is not None
            left = min(self.startup.last_request + FAILED_LOAD_QUIET_S, until) - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=left)
            except TimeoutError:
                pass

    # -- signals --------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self.signals += 1
        if self.signals == 1:
            log.info("received %s: shutting down", sig.name)
            self.startup.stopping = True  # while loading, requests now hear "shutting down"
            if self.switch is not None:
                self.switch.failed()  # and the ones held for the load hear it at once
        elif self.runtime is None:
            # Still loading: the load runs in a thread that nothing can interrupt.
            log.warning("received %s again while loading: exiting now", sig.name)
            os._exit(128 + sig.value)
        else:
            log.warning("received %s again: exiting without waiting for streams", sig.name)
            for server in self.servers:
                server.force_exit = True
        self.stop.set()

    def _on_reload_signal(self) -> None:
        if self.runtime is None or self.stop.is_set():
            log.warning("received SIGHUP while starting or stopping: ignored")
            return
        log.info("received SIGHUP: reloading")
        task = asyncio.create_task(self._reload_logged())
        self._tasks.add(task)  # keep a reference until it ends
        task.add_done_callback(self._tasks.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except CodexpcError as exc:
            log.error("reload failed, still serving the old model: %s", exc)
        except Exception:
            # A bug in a loader must not take down a daemon that is serving fine.
            log.exception("reload failed unexpectedly, still serving the old model")

    # -- the engine -----------------------------------------------------------------------------

    async def _build_runtime(self, config: DaemonConfig) -> rt.Runtime:
        entry = config.require_servable()
        engine, constrainer = await self._load_engine(config, entry)
        encoding = load_encoding(explicit=config.vocab, checkpoint=entry.checkpoint)
        return rt.Runtime(
            engine,
            encoding,
            constrainer=constrainer,
            models=[_runtime_model(entry, engine)],
            render_options=RenderOptions(default_effort=level_of(config.default_reasoning_effort,
                                                             "default_reasoning_effort")),
            config=config,
            limits=RequestLimits.from_config(config.limits),
        )

    async def _load_engine(self, config: DaemonConfig, entry: ModelEntry) -> tuple[Engine, Constrainer | None]:
        started = time.monotonic()
        log.info("loading model=%s engine=%s checkpoint=%s device=%s", entry.name, entry.engine, entry.checkpoint,
                 config.device)
        # Only engine "vllm" takes its servers, so factories without the keyword still work.
        remote = {"remote": entry.remote} if entry.engine == "vllm" else {}
        # In a thread: loading takes seconds to minutes, and signals must still be heard.
        spec = entry.speculative
        # Passed only when on, so that a factory without the keyword (tests') still serves.
        extra = ({"speculative": SpeculativeConfig(enabled=True, k=spec.k, min_match=spec.min_match,
                                                  max_match=max(32, spec.min_match))} if spec.enabled else {})
        engine = await asyncio.to_thread(self.engine_factory, entry.engine, model=entry.name,
                                         checkpoint=entry.checkpoint, device=config.device, **remote, **extra)
        info = engine.info
        log.info("loaded model=%s engine=%s device=%s context=%d in %.1fs", info.model, info.kind, info.device,
                 info.context_length, time.monotonic() - started)
        try:
            constrainer = await asyncio.to_thread(Constrainer.for_engine, info, entry.constrained_decoding,
                                                  vocab=config.vocab, checkpoint=entry.checkpoint)
        except BaseException:
            await engine.close()  # a vocabulary that cannot be read fails the load, and frees the engine
            raise
        return engine, constrainer

    async def reload(self) -> Mapping[str, Any]:
        """Re-read the config file and load the default model again; running requests finish
        on the old engine. Raises CodexpcError (and keeps the old engine) on failure."""
        assert self.runtime is not None
        async with self._reload_lock:
            config = load_config(self.config.reload_path, dict(self.config.overrides))
            if config.listen != self.config.listen:
                log.warning("reload: listen settings changed; they apply at the next restart")
            entry = config.require_servable()
            engine, constrainer = await self._load_engine(config, entry)
            await self.runtime.reload(engine, models=[_runtime_model(entry, engine)], constrainer=constrainer)
            self.config = config
            return {"model": engine.info.model, "engine": engine.info.kind, "checkpoint": engine.info.checkpoint}

    # -- the servers ----------------------------------------------------------------------------

    async def _start_servers(self, app: ASGIApp) -> None:
        limits = self.config.limits
        groups: list[tuple[Policy, list[Any]]] = []
        if self.listeners.unix is not None:
            groups.append((Policy("unix", frozenset(), None, limits.max_body_bytes), [self.listeners.unix]))
        if self.listeners.tcp:
            assert self.listeners.port is not None
            off_loopback = any(not ipaddress.ip_address(h).is_loopback for h in self.config.listen.hosts)
            hosts = None if off_loopback else loopback_hosts(self.listeners.port)
            groups.append((Policy("tcp", hosts, self.token, limits.max_body_bytes), list(self.listeners.tcp)))
        for policy, sockets in groups:
            wrapped: ASGIApp = SecurityMiddleware(capture(app, self.config.capture_dir), policy)
            server = uvicorn.Server(uvicorn_config(wrapped, self.config))
            server.lifespan = server.config.lifespan_class(server.config)
            await server.startup(sockets=sockets)
            self.servers.append(server)
        if self.listeners.socket_path is not None:
            log.info("listening on unix:%s", self.listeners.socket_path)
        for address in self.listeners.tcp_addresses():
            log.info("listening on http://%s", address)

    async def _stop_servers(self, loops: list[asyncio.Task[None]]) -> None:
        """Stop the listeners when no engine ever served (a stop or a failure while loading)."""
        for server in self.servers:
            server.should_exit = True
        await asyncio.gather(*loops)
        await asyncio.gather(*(server.shutdown() for server in self.servers))

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        assert self.runtime is not None
        deadline = self.config.limits.shutdown_timeout_s
        log.info("stopping: no new connections; %d request(s) running; deadline %.1fs",
                 self.runtime.metrics.in_flight, deadline)
        for task in self._tasks:
            task.cancel()  # a reload still loading: its engine would never be closed otherwise
        for server in self.servers:
            server.should_exit = True
        await asyncio.gather(*loops)
        shutdowns = [asyncio.create_task(server.shutdown()) for server in self.servers]
        _done, pending = await asyncio.wait(shutdowns, timeout=deadline)
        if pending:
            log.warning("deadline passed: ending %d running request(s)", self.runtime.metrics.in_flight)
        # Closing the engine ends every generation still running (as cancelled), so each
        # stream writes its final event before uvicorn's own deadline cancels what is left.
        await self.runtime.close()
        if getattr(self, "store", None) is not None:
            self.store.close()
        await asyncio.gather(*shutdowns)
        log.info("stopped")


def _runtime_model(entry: ModelEntry, engine: Engine) -> rt.ModelEntry:
    return rt.ModelEntry(entry.name, engine.info.context_length, aliases=entry.aliases, created=int(time.time()))
