"""ScriptedEngine: a playback engine for protocol tests, chosen explicitly, never a default.

Real weights cannot exist in tests, and random weights say nothing meaningful. This engine
plays back Harmony completions, encoded with the real tokenizer, one token at a time, so the
whole path (rendering, decoder, tool validation, events, HTTP, SSE) runs for real.

By default the completion depends on the rendered prompt:
- a shell tool (`exec_command` or `shell`) is offered and no tool output came back since the
  last user message: a short analysis, then a call of that tool with a harmless command;
- a tool output came back: a short analysis, then a final answer quoting the output;
- otherwise: a short analysis, then a final answer.
A fixed list of completions (for malformed outputs and the like) replaces that rule.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import EngineInfo, SamplingParams, TokenEvent
from codexpc.errors import ContextLengthError

SCRIPTED_COMMAND = "echo codexpc-scripted"
PROMPTS_KEPT = 64

# A script maps the decoded prompt to the completion text (Harmony, special tokens included).
Script = Callable[[str], str]

_LAST_USER = "<|start|>user<|message|>"
_TOOL_MESSAGE = re.compile(r"<\|start\|>(functions\.[\w.-]+) to=assistant<\|channel\|>\w+<\|message\|>(.*?)<\|end\|>", re.S)
_FUNCTIONS_BLOCK = re.compile(r"namespace functions \{(.*?)\} // namespace functions", re.S)
_TOOL_NAME = re.compile(r"^type (\w+) = ", re.M)


def _offered_functions(prompt: str) -> list[str]:
    block = _FUNCTIONS_BLOCK.search(prompt)
    return _TOOL_NAME.findall(block.group(1)) if block else []


def _tool_call(name: str) -> str:
    if name == "exec_command":  # Codex 0.169's tool: `cmd` is its one required argument
        args: dict[str, Any] = {"cmd": SCRIPTED_COMMAND}
    else:  # the older Codex `shell` tool takes an argv list
        args = {"command": ["bash", "-lc", SCRIPTED_COMMAND]}
    return (
        "<|channel|>analysis<|message|>The user wants something done. I will run a command.<|end|>"
        f"<|start|>assistant<|channel|>commentary to=functions.{name} <|constrain|>json"
        f"<|message|>{json.dumps(args)}<|call|>"
    )


def _answer(analysis: str, text: str) -> str:
    return (
        f"<|channel|>analysis<|message|>{analysis}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{text}<|return|>"
    )


def default_script(prompt: str) -> str:
    """The completion for a prompt: a tool call, an answer quoting tool output, or an answer."""
    turn = prompt.rpartition(_LAST_USER)[2]
    outputs = _TOOL_MESSAGE.findall(turn)
    if outputs:
        # Codex wraps a command's output in a header that ends with "Output:".
        output = outputs[-1][1].rpartition("Output:\n")[2].strip()
        return _answer("The command ran. I will report its output.", f"The command printed: {output}")
    shells = [name for name in _offered_functions(prompt) if name in ("exec_command", "shell")]
    if shells:
        return _tool_call(shells[0])
    question = turn.partition("<|end|>")[0].strip()[:80]
    return _answer("The user asked a question. I will answer briefly.", f"Scripted answer to: {question}")


def fixed_scripts(completions: Sequence[str]) -> Script:
    """Plays the given completions in order, one per request, repeating the last one."""
    remaining = list(completions)
    assert remaining, "at least one completion"

    def next_completion(_prompt: str) -> str:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return next_completion


@dataclass
class _Counters:
    submitted: int = 0
    finished: int = 0
    cancelled: int = 0
    running: int = 0


class ScriptedGeneration:
    """One playback; iterate it once."""

    def __init__(self, request_id: str, prompt_tokens: int, tokens: list[int], params: SamplingParams,
                 context_length: int, delay_s: float, counters: _Counters, fail_after: int | None = None) -> None:
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0
        self._tokens = tokens
        self._params = params
        self._room = context_length - prompt_tokens  # tokens that still fit in the context
        self._delay_s = delay_s
        self._counters = counters
        self._fail_after = fail_after
        self._cancelled = asyncio.Event()
        self._finished = False  # a last event was yielded
        self._events: AsyncGenerator[TokenEvent, None] | None = None  # the playback ready() reads
        self._running = False  # counted in the engine's running playbacks

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self._play()

    async def ready(self) -> list[TokenEvent]:
        """The next event (a playback makes one at a time); the contract's way to read."""
        if self._events is None:
            self._events = self._play()
        event = await anext(self._events)
        if event.finish_reason is not None:
            await self._events.aclose()
        return [event]

    async def _play(self) -> AsyncGenerator[TokenEvent, None]:
        self._counters.running += 1
        self._running = True
        try:
            async for event in self._steps():
                self._finished = event.finish_reason is not None
                yield event
        finally:
            self._stop_running()

    def _stop_running(self) -> None:
        if self._running:
            self._running = False
            self._counters.running -= 1

    async def _steps(self) -> AsyncIterator[TokenEvent]:
        limit = min(self._params.max_new_tokens, self._room)
        for index, token in enumerate(self._tokens):
            if self._cancelled.is_set():
                yield TokenEvent(None, "cancelled")
                return
            if index == self._fail_after:  # a scripted engine failure, e.g. out of GPU memory
                self._counters.finished += 1
                yield TokenEvent(None, "error", error="scripted engine failure")
                return
            if index >= limit:
                yield TokenEvent(None, "length" if limit == self._params.max_new_tokens else "context")
                self._counters.finished += 1
                return
            await asyncio.sleep(self._delay_s)  # also lets a cancel from the client land
            if token in self._params.stop_token_ids:
                self._counters.finished += 1
                yield TokenEvent(token, "stop")
                return
            yield TokenEvent(token)
        # A script without a stop token behaves like a model that never stops.
        self._counters.finished += 1
        yield TokenEvent(None, "length")

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def done(self) -> bool:
        """Finished, or cancelled (a cancelled playback's consumer may never read its last event)."""
        return self._finished or self._cancelled.is_set()

    async def cancel(self) -> None:
        if not self._cancelled.is_set() and not self._finished:
            self._counters.cancelled += 1
        self._cancelled.set()  # a reader still there gets "cancelled" next
        self._stop_running()  # one that left never reads again


class ScriptedEngine:
    """Implements codexpc.engine.api.Engine by playing back scripted Harmony completions."""

    def __init__(self, encoding: HarmonyEncoding, *, script: Script = default_script, model: str = "gpt-oss-20b",
                 context_length: int = 131072, delay_s: float = 0.0, fail_after: int | None = None) -> None:
        self.info = EngineInfo(kind="scripted", model=model, checkpoint="scripted playback (no weights)",
                               device="cpu", context_length=context_length)
        self._encoding = encoding
        self._script = script
        self._delay_s = delay_s
        self._fail_after = fail_after  # tokens played before every playback fails; None: never
        self._counters = _Counters()
        # The latest prompts, for tests to inspect; bounded so that a long soak does not grow.
        self.prompts: deque[list[int]] = deque(maxlen=PROMPTS_KEPT)
        self._live: set[ScriptedGeneration] = set()
        self.closed = False

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> ScriptedGeneration:
        if len(prompt) >= self.info.context_length:
            raise ContextLengthError(
                f"the prompt has {len(prompt)} tokens; the context window is {self.info.context_length}",
                param="input")
        self.prompts.append(list(prompt))
        completion = self._script(self._encoding.decode_utf8(list(prompt)))
        tokens = self._encoding.encode(completion, allowed_special="all")
        self._counters.submitted += 1
        generation = ScriptedGeneration(request_id, len(prompt), tokens, params, self.info.context_length,
                                        self._delay_s, self._counters, self._fail_after)
        self._live = {g for g in self._live if not g.done} | {generation}
        return generation

    def stats(self) -> dict[str, Any]:
        c = self._counters
        return {"running": c.running, "waiting": 0, "submitted": c.submitted, "finished": c.finished,
                "cancelled": c.cancelled, "prefix_cache_hits": 0, "prefix_cache_hit_tokens": 0}

    async def close(self) -> None:
        """Cancel every playback still running, as the real engines do when they close."""
        self.closed = True
        for generation in self._live:
            await generation.cancel()
        self._live.clear()
