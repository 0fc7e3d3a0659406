"""What a finished generation reports to the translators: its token counts and how it ended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    cached_tokens: int  # prompt tokens whose KV came from the prefix cache
    output_tokens: int
    reasoning_tokens: int  # output tokens inside analysis messages


@dataclass(frozen=True)
class StreamEnd:
    """The facts a translator's terminal event is made of, once the decoder's Stop came."""

    usage: Usage
    engine_error: str | None = None  # the engine's own failure, which explains any decode error
    cancelled: bool = False  # the engine ended the generation itself (daemon stopping, reload)
