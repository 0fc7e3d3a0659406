"""VllmEngine: codexpc's engine contract over one or more vLLM servers.

Everything above the engine is unchanged: the session renders Harmony tokens, submits them
here, and decodes the token ids that come back. This engine owns only the forwarding: which
back end (router.py), in which wire format (wire.py, stream.py), and what happened to each
back end (backend.py), which stats() shows to /health and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from codexpc.config.schema import RemoteEngineConfig
from codexpc.engine.api import EngineInfo, SamplingParams
from codexpc.engine.vllm.backend import Backend, Backoff
from codexpc.engine.vllm.generation import VllmGeneration
from codexpc.engine.vllm.probe import probe_models
from codexpc.engine.vllm.router import candidates
from codexpc.errors import ConfigError, ContextLengthError

log = logging.getLogger("codexpc.engine.vllm")


class VllmEngine:
    """Implements codexpc.engine.api.Engine by forwarding to vLLM's token-in/token-out API."""

    def __init__(self, info: EngineInfo, backends: Sequence[Backend], remote: RemoteEngineConfig,
                 api_key: str | None = None) -> None:
        self.info = info
        self.backends = list(backends)
        self._backoff = Backoff(remote.retry_initial_s, remote.retry_max_s)
        # read: between two chunks (the first waits for the prefill); write/pool: as connect.
        self._timeout = httpx.Timeout(remote.read_timeout_s, connect=remote.connect_timeout_s,
                                      write=remote.connect_timeout_s, pool=remote.connect_timeout_s)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None
        self._live: set[VllmGeneration] = set()
        self._counts: Counter[str] = Counter()
        self.closed = False

    @property
    def client(self) -> httpx.AsyncClient:
        """Made on first use, inside the event loop; one connection per running stream.
        trust_env=False: no proxy from the environment, only the configured back ends."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers, trust_env=False,
                                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        return self._client

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> VllmGeneration:
        if len(prompt) >= self.info.context_length:
            raise ContextLengthError(
                f"the prompt has {len(prompt)} tokens; the context window is {self.info.context_length}",
                param="input")
        generation = VllmGeneration(self, prompt, params, request_id)
        self._live.add(generation)
        self._counts["submitted"] += 1
        return generation

    # -- what the generations ask of the engine -------------------------------------------------

    def candidates(self, key: str | None) -> list[Backend]:
        return candidates(self.backends, key, time.monotonic())

    def backend_failed(self, backend: Backend, error: str) -> float:
        return backend.failed(error, self._backoff)

    def unavailable_message(self, tried: list[str]) -> str:
        if tried:
            return "every vLLM back end failed: " + "; ".join(tried)
        soonest = min(b.retry_at for b in self.backends) - time.monotonic()
        last = next((b.last_error for b in self.backends if b.last_error), "unknown")
        return (f"all {len(self.backends)} vLLM back ends are out after failures (next retry in "
                f"{max(0.0, soonest):.1f}s); last error: {last}")

    def generation_ended(self, generation: VllmGeneration) -> None:
        if generation in self._live:
            self._live.discard(generation)
            reason = generation.finish_reason
            self._counts["cancelled" if reason == "cancelled" else "failed" if reason == "error" else "finished"] += 1

    # -- the contract ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        c = self._counts
        return {"running": len(self._live), "waiting": 0, "submitted": c["submitted"], "finished": c["finished"],
                "cancelled": c["cancelled"], "failed": c["failed"],
                "backends_total": len(self.backends),
                "backends_up": sum(1 for b in self.backends if b.state != "down"),
                "backend_failures": sum(b.failures for b in self.backends),
                "backends": [b.snapshot(now) for b in self.backends]}

    async def close(self) -> None:
        """Cancel every generation (closing its stream aborts it in vLLM), then the connections."""
        self.closed = True
        await asyncio.gather(*(g.cancel() for g in list(self._live)))
        if self._client is not None:
            await self._client.aclose()


def build_vllm_engine(model: str, remote: RemoteEngineConfig) -> VllmEngine:
    """Ask each back end what it serves, then the engine. Runs in the daemon's loader thread."""
    if not remote.backends:
        raise ConfigError(f'models."{model}".backends is empty: list the vLLM servers to forward to')
    api_key = _read_key(remote) if remote.api_key_file else None
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    backends = [Backend(url) for url in remote.backends]
    backoff = Backoff(remote.retry_initial_s, remote.retry_max_s)
    with httpx.Client(timeout=remote.connect_timeout_s, headers=headers, trust_env=False) as client:
        for backend in backends:
            answer = probe_models(client, backend.url, remote.served_model)
            if answer.error is not None:
                backend.failed(answer.error, backoff)
                log.warning("vllm backend=%s is not serving yet: %s", backend.url, answer.error)
                continue
            backend.model_id, backend.max_model_len = answer.model_id, answer.max_model_len
            backend.state = "up"
            log.info("vllm backend=%s serves %s max_model_len=%s", backend.url, answer.model_id, answer.max_model_len)
    lengths = [b.max_model_len for b in backends if b.max_model_len is not None]
    context = remote.context_length or (min(lengths) if lengths else None)
    if context is None:
        errors = "; ".join(f"{b.url}: {b.last_error}" for b in backends)
        raise ConfigError(f"no vLLM back end told its max_model_len ({errors}); start vLLM first, or set "
                          f'models."{model}".context_length')
    info = EngineInfo(kind="vllm", model=model, checkpoint="vllm: " + ", ".join(remote.backends),
                      device="remote", context_length=context)
    return VllmEngine(info, backends, remote, api_key)


def _read_key(remote: RemoteEngineConfig) -> str:
    assert remote.api_key_file is not None
    try:
        key = remote.api_key_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"api_key_file {remote.api_key_file}: {exc.strerror}") from None
    if not key:
        raise ConfigError(f"api_key_file {remote.api_key_file} is empty")
    return key
