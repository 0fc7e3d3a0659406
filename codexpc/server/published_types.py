"""The openai package's Response and its five lifecycle events, with integer timestamps.

The SDK types `created_at` and `completed_at` as floats, so pydantic writes 1796390110.0; the
published API (and OpenAI's service) sends integer Unix seconds. These subclasses narrow the two
fields and make each event hold the narrowed Response, so every dump (the JSON reply, the SSE
frames) writes integers, with the SDK's schema for everything else.
"""

from __future__ import annotations

from openai.types import responses as sdk


class Response(sdk.Response):
    created_at: int  # Unix seconds
    completed_at: int | None = None  # Unix seconds; set when the status is completed


class ResponseCreatedEvent(sdk.ResponseCreatedEvent):
    response: Response


class ResponseInProgressEvent(sdk.ResponseInProgressEvent):
    response: Response


class ResponseCompletedEvent(sdk.ResponseCompletedEvent):
    response: Response


class ResponseFailedEvent(sdk.ResponseFailedEvent):
    response: Response


class ResponseIncompleteEvent(sdk.ResponseIncompleteEvent):
    response: Response
