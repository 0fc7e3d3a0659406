"""Run a checkpoint on codexpc's own engine and decoder, and say what the model answered.

Used after training (a checkpoint that does not answer as trained is not cached) and by the
tests. Everything is the daemon's path: render_responses, the engine's submit, HarmonyDecoder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import Engine, SamplingParams
from codexpc.harmony.decoder import HarmonyDecoder, stop_token_ids
from codexpc.harmony.events import DecodeError, MessageDone, Stop, ToolArgumentsDone
from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.train.completions import Mode
from codexpc.train.data import EXEC_COMMAND, OTHER_CODEX_TOOLS, SHELL

MODEL_NAME = "gpt-oss-tiny-trained"
MAX_NEW_TOKENS = 64  # the longest answer is 40 tokens


@dataclass
class Answer:
    """What one request decoded to."""

    tokens: list[int]
    messages: list[MessageDone] = field(default_factory=list)
    calls: list[ToolArgumentsDone] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    stop: str | None = None  # Stop.reason

    def channel_text(self, channel: str) -> str:
        return "".join(m.text for m in self.messages if m.channel == channel)


async def _answer(engine: Engine, encoding: HarmonyEncoding, body: Mapping[str, Any], params: SamplingParams) -> Answer:
    rendered = render_responses(body, encoding, RenderOptions(current_date="2026-01-01"))
    decoder = HarmonyDecoder(encoding, rendered.registry)
    answer = Answer(tokens=[])
    events = []
    async for token in engine.submit(rendered.tokens, params, "verify"):
        if token.token_id is not None:
            answer.tokens.append(token.token_id)
            events += decoder.feed(token.token_id)
        if token.finish_reason is not None:
            events += decoder.finish(token.finish_reason)
    for event in events:
        if isinstance(event, MessageDone):
            answer.messages.append(event)
        elif isinstance(event, ToolArgumentsDone):
            answer.calls.append(event)
        elif isinstance(event, DecodeError):
            answer.errors.append(event)
        elif isinstance(event, Stop):
            answer.stop = event.reason
    return answer


def answer_all(
    engine: Engine, encoding: HarmonyEncoding, bodies: Sequence[Mapping[str, Any]], temperature: float = 0.0, seed: int = 0
) -> list[Answer]:
    """Each body's answer, one at a time, on a running engine."""
    params = SamplingParams(temperature=temperature, seed=seed, max_new_tokens=MAX_NEW_TOKENS,
                            stop_token_ids=stop_token_ids(encoding))

    async def run() -> list[Answer]:
        return [await _answer(engine, encoding, body, params) for body in bodies]

    return asyncio.run(run())


def _message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def _after_call(name: str, arguments: dict[str, Any], output: str) -> list[dict[str, Any]]:
    return [
        _message("user", "what is in this folder?"),
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "I will look."}]},
        {"type": "function_call", "name": name, "arguments": json.dumps(arguments), "call_id": "call_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": output},
    ]


def probe_bodies() -> list[tuple[Mode, dict[str, Any]]]:
    """Requests of each situation, in words the training data never drew, and what each must get."""
    return [
        (Mode.ANSWER, {"input": "Tell me a joke about compilers."}),
        (Mode.ANSWER, {"instructions": "Be terse.", "input": [_message("user", "2 + 2?")],
                       "reasoning": {"effort": "low"}}),
        (Mode.ANSWER, {"input": "Which goal is set?", "tools": OTHER_CODEX_TOOLS[3:5]}),
        (Mode.CALL_EXEC, {"input": "list the files here", "tools": [EXEC_COMMAND]}),
        (Mode.CALL_SHELL, {"input": [_message("user", "show me the date")], "tools": [SHELL]}),
        (Mode.REPORT, {"input": _after_call("exec_command", {"cmd": "ls"}, "a.txt\nb.txt\n"),
                       "tools": [EXEC_COMMAND]}),
        (Mode.REPORT, {"input": _after_call("shell", {"command": ["date"]}, "Wed Nov 25 2026\n"), "tools": [SHELL]}),
    ]


def check_answer(mode: Mode, answer: Answer) -> list[str]:
    """What is wrong with `answer` for a request of `mode`; empty when it is right."""
    problems = [f"decode error: {e.message}" for e in answer.errors]
    wants_call = mode in (Mode.CALL_EXEC, Mode.CALL_SHELL)
    if answer.stop != ("call" if wants_call else "return"):
        problems.append(f"stop {answer.stop!r}")
    if not answer.channel_text("analysis"):
        problems.append("no analysis")
    if wants_call:
        name = "exec_command" if mode is Mode.CALL_EXEC else "shell"
        if [c.name for c in answer.calls] != [name]:
            problems.append(f"calls {[c.recipient for c in answer.calls]}, expected functions.{name}")
        problems += [f"invalid arguments: {c.error.message}" for c in answer.calls if c.error is not None]
    elif not answer.channel_text("final") or answer.calls:
        problems.append("no final answer, or a call")
    return problems


def verify_checkpoint(checkpoint: Path, encoding: HarmonyEncoding) -> list[str]:
    """Greedy answers to the probe requests through the paged engine on the CPU; problems found."""
    from codexpc.engine.factory import create_engine

    engine = create_engine("paged", model=MODEL_NAME, checkpoint=checkpoint, device="cpu")
    try:
        probes = probe_bodies()
        answers = answer_all(engine, encoding, [body for _, body in probes])
    finally:
        asyncio.run(engine.close())
    return [f"{mode.value}: {p}" for (mode, _), a in zip(probes, answers, strict=True) for p in check_answer(mode, a)]
