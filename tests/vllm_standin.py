"""A stand-in for a vLLM server, for the "vllm" engine's tests: vLLM's wire format in front of
codexpc's own paged engine.

vLLM itself cannot run here (its wheel needs a newer torch and a GPU), so this plays its part on
a real loopback socket. The request and response models re-declare the fields of vLLM's own
definitions, with vLLM's names: GenerateRequest, GenerateStreamResponse and their choices
(vllm/entrypoints/serve/disagg/protocol.py, later scale_out/token_in_token_out/protocol.py),
vllm.sampling_params.SamplingParams, and CompletionRequest / CompletionStreamResponse
(vllm/entrypoints/openai/completion/protocol.py), plus the ModelCard of GET /v1/models. They are
stricter than vLLM (extra="forbid"): vLLM drops a field it does not know, so a field codexpc
misspelled would be silently ignored there; here it is a 400 and the test fails.

The tokens come from the paged engine run on the received ids with the received sampling
parameters, so what codexpc serves through the stand-in equals what the local engine serves.
The stream follows vLLM's: a `data:` line per chunk of `stream_interval` tokens, the finish
reason on the chunk with the last tokens, a usage chunk, `data: [DONE]`. A client that goes
away aborts the generation (vLLM's with_cancellation), and the stand-in records it.

`faults` makes it misbehave the ways a real server can: die mid-stream, stall, answer garbage,
answer an HTTP error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from codexpc.engine.api import Engine, Generation, TokenEvent
from codexpc.engine.api import SamplingParams as EngineParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StandinSamplingParams(_Strict):  # vllm.sampling_params.SamplingParams (the fields codexpc may send)
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop_token_ids: list[int] | None = None
    max_tokens: int | None = 16
    detokenize: bool = True
    skip_special_tokens: bool = True


class StandinStreamOptions(_Strict):  # vllm StreamOptions
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class StandinGenerateRequest(_Strict):  # GenerateRequest
    request_id: str = "standin"
    token_ids: list[int] = Field(min_length=1)
    sampling_params: StandinSamplingParams
    model: str | None = None
    stream: bool | None = False
    stream_options: StandinStreamOptions | None = None
    cache_salt: str | None = None
    priority: int = 0


class StandinCompletionRequest(_Strict):  # CompletionRequest, with a token-id prompt
    model: str | None = None
    prompt: list[int] = Field(min_length=1)
    max_tokens: int | None = 16
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_token_ids: list[int] | None = []
    stream: bool | None = False
    stream_options: StandinStreamOptions | None = None
    skip_special_tokens: bool = True
    add_special_tokens: bool = True
    logprobs: int | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    request_id: str = "standin"


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class GenerateResponseStreamChoice(BaseModel):
    index: int
    logprobs: None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = None


class GenerateStreamResponse(BaseModel):
    request_id: str
    choices: list[GenerateResponseStreamChoice]
    usage: UsageInfo | None = None


class CompletionLogProbs(BaseModel):
    text_offset: list[int] = []
    token_logprobs: list[float | None] = []
    tokens: list[str] = []
    top_logprobs: list[dict[str, float] | None] = []


class CompletionResponseStreamChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogProbs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    token_ids: list[int] | None = None


class CompletionStreamResponse(BaseModel):
    id: str
    object: str = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionResponseStreamChoice]
    usage: UsageInfo | None = None


@dataclass
class Faults:
    """How the stand-in misbehaves; a test sets these between requests."""

    die_after_tokens: int | None = None  # cut the connection after this many tokens, without [DONE]
    first_chunk_delay_s: float = 0.0  # stall before the first chunk (a slow or hung server)
    chunk_delay_s: float = 0.0  # between chunks (keeps a stream in flight for cancellation)
    garbage: str | None = None  # sent as the whole body of a 200 event stream
    status: int | None = None  # answer every generation with this HTTP status
    ids_in_logprobs_only: bool = False  # completions: as a vLLM before return_token_ids


@dataclass
class StandinLog:
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (route, body)
    aborted: list[str] = field(default_factory=list)  # request ids whose client went away
    completed: list[str] = field(default_factory=list)
    streamed: dict[str, list[int]] = field(default_factory=dict)  # request id -> token ids sent


async def events_of(generation: Generation) -> AsyncIterator[TokenEvent]:
    """A generation's events through the contract's ready(), admissions left out."""
    while True:
        for event in await generation.ready():
            if not event.is_admission:
                yield event
            if event.finish_reason is not None:
                return


class _Cut(Exception):
    """Raised inside the stream: uvicorn drops the connection without ending the chunked body."""


def create_standin(engine: Engine, *, model: str = "openai/gpt-oss-120b", max_model_len: int = 4096,
                   generate_route: bool = True, stream_interval: int = 3) -> tuple[FastAPI, Faults, StandinLog]:
    """The app; `generate_route=False` plays a vLLM from before /inference/v1/generate."""
    app = FastAPI()
    faults, record = Faults(), StandinLog()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model, "object": "model", "created": 0, "owned_by": "vllm", "root": model,
                "max_model_len": max_model_len}
        return {"object": "list", "data": [card]}

    async def generate(request: StandinGenerateRequest, raw: Request) -> Any:
        record.requests.append(("generate", json.loads(await raw.body())))
        p = request.sampling_params
        params = EngineParams(temperature=p.temperature, top_p=p.top_p, seed=p.seed, max_new_tokens=p.max_tokens or 16,
                              stop_token_ids=frozenset(p.stop_token_ids or ()))
        return await _answer("generate", request.request_id, request.token_ids, params)

    if generate_route:
        app.post("/inference/v1/generate")(generate)

    @app.post("/v1/completions")
    async def completions(request: StandinCompletionRequest, raw: Request) -> Any:
        record.requests.append(("completions", json.loads(await raw.body())))
        params = EngineParams(temperature=1.0 if request.temperature is None else request.temperature,
                              top_p=1.0 if request.top_p is None else request.top_p, seed=request.seed,
                              max_new_tokens=request.max_tokens or 16,
                              stop_token_ids=frozenset(request.stop_token_ids or ()))
        return await _answer("completions", request.request_id, request.prompt, params, request)

    async def _answer(route: str, rid: str, prompt: list[int], params: EngineParams,
                      completion: StandinCompletionRequest | None = None) -> Any:
        if faults.status is not None:
            error = {"message": f"stand-in answers {faults.status}", "type": "InternalServerError",
                     "param": None, "code": faults.status}
            return JSONResponse({"error": error}, status_code=faults.status)
        if faults.garbage is not None:
            garbage = faults.garbage
            return StreamingResponse(iter([garbage.encode()]), media_type="text/event-stream")
        chunks = _stream(route, rid, prompt, params, completion)
        return StreamingResponse(chunks, media_type="text/event-stream")

    async def _stream(route: str, rid: str, prompt: list[int], params: EngineParams,
                      completion: StandinCompletionRequest | None) -> AsyncIterator[str]:
        generation = engine.submit(prompt, params, rid)
        sent: list[int] = record.streamed.setdefault(rid, [])
        done = False
        try:
            await asyncio.sleep(faults.first_chunk_delay_s)
            pending: list[TokenEvent] = []
            async for event in events_of(generation):
                pending.append(event)
                if len(pending) < stream_interval and event.finish_reason is None:
                    continue
                if faults.die_after_tokens is not None and len(sent) + len(pending) > faults.die_after_tokens:
                    raise _Cut("the stand-in dies mid-stream")
                ids = [e.token_id for e in pending if e.token_id is not None]
                finish = _vllm_reason(event.finish_reason)
                pending = []
                if ids or finish:
                    sent.extend(ids)
                    yield "data: " + _chunk(route, rid, model, ids, finish, completion, faults) + "\n\n"
                    await asyncio.sleep(faults.chunk_delay_s)
                if event.finish_reason is not None:
                    break
            usage = UsageInfo(prompt_tokens=len(prompt), completion_tokens=len(sent),
                              total_tokens=len(prompt) + len(sent))
            tail = GenerateStreamResponse(request_id=rid, choices=[], usage=usage) if route == "generate" else \
                CompletionStreamResponse(id=rid, model=model, choices=[], usage=usage)
            yield f"data: {tail.model_dump_json(exclude_none=True)}\n\n"
            yield "data: [DONE]\n\n"
            done = True
            record.completed.append(rid)
        finally:
            if not done:
                record.aborted.append(rid)
                await generation.cancel()

    return app, faults, record


def _chunk(route: str, rid: str, model: str, ids: list[int], finish: str | None,
           completion: StandinCompletionRequest | None, faults: Faults) -> str:
    if route == "generate":
        choice = GenerateResponseStreamChoice(index=0, finish_reason=finish, token_ids=ids)
        return GenerateStreamResponse(request_id=rid, choices=[choice]).model_dump_json()
    assert completion is not None
    logprobs = None
    if completion.logprobs is not None and completion.return_tokens_as_token_ids:
        logprobs = CompletionLogProbs(tokens=[f"token_id:{t}" for t in ids], token_logprobs=[-0.1] * len(ids),
                                      text_offset=[0] * len(ids), top_logprobs=[None] * len(ids))
    with_ids = completion.return_token_ids and not faults.ids_in_logprobs_only
    choice = CompletionResponseStreamChoice(index=0, text="x" * len(ids), logprobs=logprobs, finish_reason=finish,
                                            token_ids=ids if with_ids else None,
                                            stop_reason=ids[-1] if finish == "stop" and ids else None)
    return CompletionStreamResponse(id=rid, model=model, choices=[choice]).model_dump_json()


def _vllm_reason(reason: Literal["stop", "length", "context", "cancelled", "error"] | None) -> str | None:
    # vLLM says "length" both for max_tokens and for max_model_len.
    return {"stop": "stop", "length": "length", "context": "length"}.get(reason or "", None if reason is None
                                                                         else "error")
