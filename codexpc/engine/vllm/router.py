"""Which back end a request goes to, and which ones after it if that one fails.

A conversation (its routing key: Codex's prompt_cache_key) goes where rendezvous hashing puts
it: each back end scores hash(key, url) and the highest score among those available wins. The
same key meets the same back end every turn, so its prefix stays in that vLLM's cache; when a
back end is out, only its own conversations move (each to its next-highest score), and they
come back when it returns. A request without a key goes to the least busy back end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from codexpc.engine.vllm.backend import Backend


def score(key: str, url: str) -> int:
    digest = hashlib.blake2b(f"{key}\0{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preference(backends: Sequence[Backend], key: str | None) -> list[Backend]:
    """Every back end, best first: by rendezvous score for a key, else by fewest in flight."""
    if key is None:
        return sorted(backends, key=lambda b: b.in_flight)  # stable: ties keep the configured order
    return sorted(backends, key=lambda b: score(key, b.url), reverse=True)


def candidates(backends: Sequence[Backend], key: str | None, now: float) -> list[Backend]:
    """The back ends to try for one request, in order: those not taken out."""
    return [b for b in preference(backends, key) if b.available(now)]
