"""One interface for turning decoder events into an API's events, and its two implementations.

The session's stream driver (server/session.py) knows only `Translator`: start, feed each
decoder event, finish with how the generation ended; `frames` writes what those gave as SSE,
`result` is the non-streaming body. `ResponsesTranslator` speaks the Responses API through
`ResponsesStream`, `ChatTranslator` Chat Completions through `ChatStream`; each keeps its
API's own rules (chat's `[DONE]` trailer, its error frame) here, not in the routes.
"""

from __future__ import annotations

from typing import Any, Protocol

from codexpc.harmony.events import Event
from codexpc.server import sse
from codexpc.server.chat_stream import ChatStream
from codexpc.server.errors import Failure, failure_status
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.usage import StreamEnd


class Translator(Protocol):
    @property
    def failure(self) -> Failure | None:
        """Set: the response ends as failed; the driver stops reading."""
        ...

    def start(self) -> list[Any]: ...

    def feed(self, event: Event) -> list[Any]: ...

    def finish(self, end: StreamEnd) -> list[Any]: ...

    def frames(self, events: list[Any]) -> bytes:
        """The SSE bytes of events that start/feed/finish gave."""
        ...

    def trailer(self) -> bytes:
        """What a stream writes after the terminal events."""
        ...

    def outcome(self) -> str | None:
        """The request's outcome for the log and metrics; None: the session's own judgement."""
        ...

    def result(self) -> tuple[int, dict[str, Any]]:
        """The non-streaming response: HTTP status and JSON body, after finish()."""
        ...


class ResponsesTranslator:
    def __init__(self, stream: ResponsesStream) -> None:
        self.stream = stream

    @property
    def failure(self) -> Failure | None:
        return self.stream.failure

    def start(self) -> list[Any]:
        return self.stream.start()

    def feed(self, event: Event) -> list[Any]:
        return self.stream.feed(event)

    def finish(self, end: StreamEnd) -> list[Any]:
        return self.stream.finish(end.usage, end.engine_error, end.cancelled)

    def frames(self, events: list[Any]) -> bytes:
        return b"".join(sse.event(event, event.type) for event in events)

    def trailer(self) -> bytes:
        return b""

    def outcome(self) -> str | None:
        return self.stream.final.status if self.stream.final else None

    def result(self) -> tuple[int, dict[str, Any]]:
        final = self.stream.final
        assert final is not None, "finish() first"
        # A failed or incomplete response is still a 200: its status says what happened.
        return 200, final.model_dump(mode="json", exclude_unset=True, by_alias=True, warnings=False)


class ChatTranslator:
    def __init__(self, chat: ChatStream, include_usage: bool) -> None:
        self.chat = chat
        self.include_usage = include_usage  # stream_options.include_usage
        self._end: StreamEnd | None = None

    @property
    def failure(self) -> Failure | None:
        return self.chat.failure

    def start(self) -> list[Any]:
        return self.chat.start()

    def feed(self, event: Event) -> list[Any]:
        return self.chat.feed(event)

    def finish(self, end: StreamEnd) -> list[Any]:
        self._end = end
        chunks: list[Any] = self.chat.close(end.usage, end.engine_error, self.include_usage)
        if self.chat.failure is not None:  # mid-stream, an error frame is all the API can tell
            chunks.append(self.chat.error())
        return chunks

    def frames(self, events: list[Any]) -> bytes:
        return b"".join(sse.event(chunk) for chunk in events)

    def trailer(self) -> bytes:
        return sse.DONE

    def outcome(self) -> str | None:
        return None

    def result(self) -> tuple[int, dict[str, Any]]:
        assert self._end is not None, "finish() first"
        if self.chat.failure is not None:  # broken Harmony: 502 model_error; OOM: 503; a bug: 500
            return failure_status(self.chat.failure), self.chat.error()
        return 200, self.chat.completion_body(self._end.usage)
