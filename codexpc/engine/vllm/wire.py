"""vLLM's wire format, re-declared: the bodies codexpc sends and the stream chunks it reads.

Only the fields codexpc uses, named as vLLM names them (read from vLLM's source, 2026):
- `POST /inference/v1/generate` (tokens in, tokens out): `GenerateRequest` and
  `GenerateStreamResponse` in vllm/entrypoints/serve/disagg/protocol.py (since moved to
  entrypoints/scale_out/token_in_token_out/protocol.py, same fields); `sampling_params` is
  vllm.sampling_params.SamplingParams itself, which takes `detokenize` and `stop_token_ids`.
  Streamed as `data: {json}` lines, then `data: [DONE]`; a chunk is only sent when it carries
  tokens, and the finish reason rides on the chunk with the last tokens.
- `POST /v1/completions` with a token-id prompt (vLLM before the generate route):
  `CompletionRequest` / `CompletionStreamResponse` in entrypoints/openai/completion/protocol.py.
  `return_token_ids` (vLLM >= 0.10.2) puts each chunk's new ids in `choices[0].token_ids`;
  older servers ignore it, so we also ask for `logprobs: 0` with `return_tokens_as_token_ids`,
  whose `logprobs.tokens` are "token_id:N" strings, one per sampled token.
Both routes keep a sampled stop token in the output ids (vLLM's check_stop leaves it there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, NonNegativeInt, ValidationError

from codexpc.engine.api import SamplingParams

Route = Literal["generate", "completions"]
PATHS: dict[Route, str] = {"generate": "/inference/v1/generate", "completions": "/v1/completions"}
TOKEN_ID_PREFIX = "token_id:"  # how return_tokens_as_token_ids spells a token in logprobs


class WireError(Exception):
    """The back end answered something that is not vLLM's format."""


class StreamError(Exception):
    """vLLM reported an error inside the stream (`data: {"error": ...}`)."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code  # vLLM's HTTP-like code: 400 is the request's fault, 500 the server's


@dataclass(frozen=True)
class Delta:
    """One chunk: the new token ids, and the finish reason on the chunk that ends the output."""

    token_ids: list[int]
    finish_reason: str | None = None  # vLLM's: "stop", "length", "abort", "error", ...
    cached_tokens: int | None = None  # from the usage chunk, when vLLM reports prompt token details


def request_body(route: Route, prompt: Sequence[int], params: SamplingParams, request_id: str,
                 model: str | None) -> dict[str, Any]:
    """The JSON body for one streamed generation on `route`."""
    sampling: dict[str, Any] = {
        "temperature": params.temperature,  # 0 is greedy in vLLM too
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": sorted(params.stop_token_ids),
        "skip_special_tokens": False,  # Harmony's structure is made of special tokens
    }
    if params.seed is not None:
        sampling["seed"] = params.seed
    body: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
    if model is not None:
        body["model"] = model
    if route == "generate":
        # vLLM prefixes its own id; ours makes its log lines findable from codexpc's.
        return {**body, "request_id": request_id, "token_ids": list(prompt),
                "sampling_params": {**sampling, "detokenize": False}}
    return {**body, **sampling, "prompt": list(prompt), "request_id": request_id, "return_token_ids": True,
            "logprobs": 0, "return_tokens_as_token_ids": True, "add_special_tokens": False}


class _Details(BaseModel):
    cached_tokens: int | None = None


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _Details | None = None


class _GenerateChoice(BaseModel):
    index: int
    token_ids: list[NonNegativeInt] | None = None
    finish_reason: str | None = None


class _GenerateChunk(BaseModel):
    choices: list[_GenerateChoice]
    usage: _Usage | None = None


class _Logprobs(BaseModel):
    tokens: list[str] = []


class _CompletionChoice(BaseModel):
    index: int
    text: str = ""
    token_ids: list[NonNegativeInt] | None = None
    logprobs: _Logprobs | None = None
    finish_reason: str | None = None


class _CompletionChunk(BaseModel):
    choices: list[_CompletionChoice]
    usage: _Usage | None = None


def parse_chunk(route: Route, data: str) -> Delta:
    """One `data:` payload (not `[DONE]`) as a Delta; WireError or StreamError otherwise."""
    try:
        raw = json.loads(data)
    except ValueError:
        raise WireError(f"a stream chunk is not JSON: {data[:80]!r}") from None
    if not isinstance(raw, dict):
        raise WireError(f"a stream chunk is not a JSON object: {data[:80]!r}")
    _raise_reported_error(raw)
    try:
        if route == "generate":
            chunk: _GenerateChunk | _CompletionChunk = _GenerateChunk.model_validate(raw)
        else:
            chunk = _CompletionChunk.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise WireError(f"a stream chunk is not vLLM's {route} format ({where}: {first['msg']})") from None
    cached = chunk.usage.prompt_tokens_details.cached_tokens if chunk.usage and chunk.usage.prompt_tokens_details else None
    choice = next((c for c in chunk.choices if c.index == 0), None)  # we ask for one output (n = 1)
    if choice is None:
        return Delta([], None, cached)
    ids = _completion_ids(choice) if isinstance(choice, _CompletionChoice) else list(choice.token_ids or [])
    return Delta(ids, choice.finish_reason, cached)


def _completion_ids(choice: _CompletionChoice) -> list[int]:
    if choice.token_ids is not None:
        return list(choice.token_ids)
    tokens = choice.logprobs.tokens if choice.logprobs is not None else []
    if not tokens and choice.text:
        raise WireError("the completions stream carries text but no token ids (neither return_token_ids "
                        "nor return_tokens_as_token_ids was honoured)")
    ids = []
    for token in tokens:
        number = token.removeprefix(TOKEN_ID_PREFIX)
        if number == token or not number.isdigit():
            raise WireError(f"a logprobs token is not {TOKEN_ID_PREFIX}N: {token[:40]!r}")
        ids.append(int(number))
    return ids


def _raise_reported_error(raw: dict[str, Any]) -> None:
    """vLLM's in-stream errors: {"error": {"message", "code", ...}}, or the older flat
    {"object": "error", "message", "code"}."""
    error = raw.get("error")
    if isinstance(error, dict):
        raise StreamError(str(error.get("message", "unknown error")), _code(error.get("code")))
    if raw.get("object") == "error":
        raise StreamError(str(raw.get("message", "unknown error")), _code(raw.get("code")))


def _code(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_message(body: bytes) -> str:
    """The message of a non-200 answer (vLLM's ErrorResponse, FastAPI's `detail`, or the text)."""
    try:
        raw = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip() or "(empty body)"
    if isinstance(raw, dict):
        error = raw.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        for key in ("message", "detail"):
            if key in raw:
                return str(raw[key])
    return json.dumps(raw)[:200]


def is_missing_route(status: int, body: bytes) -> bool:
    """A route this vLLM does not have: FastAPI's own 404 `{"detail": "Not Found"}`, unlike
    vLLM's 404 for an unknown model, which is an ErrorResponse."""
    if status not in (404, 405):
        return False
    try:
        raw = json.loads(body)
    except ValueError:
        return False
    return isinstance(raw, dict) and raw.get("detail") in ("Not Found", "Method Not Allowed")
