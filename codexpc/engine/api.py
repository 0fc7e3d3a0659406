"""The engine's contract with the daemon: submit prompt ids, iterate sampled ids, cancel.

Every engine (the plain PyTorch engine, the fast paged engine, the scripted playback engine
for protocol tests) implements `Engine`. The daemon never sees tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from codexpc.constrain.matcher import Constraint

# Why a generation ended:
# - "stop": a token from `stop_token_ids` was sampled (and was yielded as the last token);
# - "length": `max_new_tokens` tokens were produced;
# - "context": prompt + output reached the model's context window;
# - "cancelled": the caller cancelled;
# - "error": the engine failed (the message is on the last event).
FinishReason = Literal["stop", "length", "context", "cancelled", "error"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None  # same seed, same prompt: same tokens
    max_new_tokens: int = 4096
    stop_token_ids: frozenset[int] = field(default_factory=frozenset)
    # Which conversation this is (Codex's prompt_cache_key): an engine with several back ends
    # sends one conversation to the same one, where its prefix is cached. Local engines ignore it.
    routing_key: str | None = None
    # Grammar-constrained decoding (codexpc/constrain/): each sequence gets its own matcher from
    # it and samples only tokens its grammar allows. None: unconstrained, at no cost.
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One step of a generation. The last event has `finish_reason` set.

    An engine's first event may be its admission: no token, no finish, `cached_tokens` set to
    the prompt tokens whose KV came from the prefix cache (known only once the sequence is
    scheduled). An engine that sends none has cached nothing.
    """

    token_id: int | None  # None on an admission, and on a last event that carries no token
    finish_reason: FinishReason | None = None
    error: str | None = None  # with finish_reason "error"
    cached_tokens: int | None = None  # set on an admission event only

    @property
    def is_admission(self) -> bool:
        return self.cached_tokens is not None


def admitted(cached_tokens: int) -> TokenEvent:
    """The event an engine sends when it schedules a sequence."""
    return TokenEvent(None, cached_tokens=cached_tokens)


@dataclass(frozen=True)
class EngineInfo:
    kind: str  # "paged", "mlx", "scripted", "vllm"
    model: str  # the configured model name, e.g. "gpt-oss-20b"
    checkpoint: str  # path, or a description for the scripted engine
    device: str  # "cpu", "cuda:0", ...
    context_length: int
    # The logits' width when the engine applies SamplingParams.constraint's token masks (the
    # paged engine); None: it takes none, and the daemon builds no constraints for it.
    mask_vocab_size: int | None = None


class Generation(Protocol):
    """A running sequence: read its events with `ready()`; `cancel()` frees its memory at once."""

    request_id: str
    prompt_tokens: int

    async def ready(self) -> list[TokenEvent]:
        """Every event produced and not read yet, at least one; waits only when there is none.

        A reader that fell behind gets all it missed at once and catches up in one write. After
        the event with `finish_reason`, it is not called again.
        """
        ...

    async def cancel(self) -> None: ...


class Engine(Protocol):
    info: EngineInfo

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> Generation:
        """Queue a sequence. Raises ContextLengthError if the prompt cannot fit at all."""
        ...

    def stats(self) -> dict[str, Any]:
        """Numbers for /health and /metrics: running and waiting sequences, memory, cache hits."""
        ...

    async def close(self) -> None:
        """Cancel every sequence and release the device memory."""
        ...
