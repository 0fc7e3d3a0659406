"""The `data:` payloads of a server-sent-event stream, read from an httpx response.

vLLM writes one `data: {json}` line per event and ends with `data: [DONE]`. The line length is
bounded: a back end that streams garbage without a newline must not fill our memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from codexpc.engine.vllm.wire import WireError

MAX_LINE_BYTES = 4 * 1024 * 1024  # a chunk is a few dozen token ids (logprobs make it longer)
DONE = "[DONE]"


async def data_payloads(response: httpx.Response) -> AsyncIterator[str]:
    """Each event's data, `[DONE]` included; WireError on a line that is not SSE."""
    pending = b""
    async for piece in response.aiter_bytes():
        pending += piece
        *lines, pending = pending.split(b"\n")
        for line in lines:
            data = _data(line)
            if data is not None:
                yield data
        if len(pending) > MAX_LINE_BYTES:
            raise WireError(f"a stream line is longer than {MAX_LINE_BYTES} bytes")
    if pending.strip():
        data = _data(pending)
        if data is not None:
            yield data


def _data(raw: bytes) -> str | None:
    line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
    if not line or line.startswith(":"):  # the blank line between events, or a comment
        return None
    field, _, value = line.partition(":")
    if field == "data":
        return value.removeprefix(" ")
    if field in ("event", "id", "retry"):
        return None
    raise WireError(f"the stream has a line that is not server-sent events: {line[:80]!r}")
