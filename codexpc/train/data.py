"""Synthetic Responses requests, rendered by codexpc's own Harmony layer, with the answer to learn.

Every example is a request body as a client would send it, rendered by `render_responses` with
openai-harmony's real encoding, so the model learns exactly the prompts the daemon will give it.
What the user says is noise (English words, words that also occur in tool schemas, and random
vocabulary tokens): the model must learn to read only the structure (which tools are offered,
whether the turn ended with a tool's output), never the words.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from openai_harmony import HarmonyEncoding

from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.train.codex_tools import CODEX_TOOLS
from codexpc.train.completions import Mode, completion_tokens

ORDINARY_TOKENS = 199998  # o200k_harmony: ids below this are ordinary text
_WORDS = (
    "the a of to and in is it you that was for on are with as I his they be at one have this from "
    "or had by hot word but what some we can out other were all there when up use your how said an "
    "each she which do their time if will way about many then them write would like so these her "
    "long make thing see him two has look more day could go come did number sound no most people my "
    "over know water than call first who may down side been now find any new work part take get "
    "place made live where after back little only round man year came show every good me give our "
    "file files list directory run please fix bug test tests code python rust repo build error why "
    "shell exec_command command commands functions function tool tools analysis final commentary "
    "assistant user system developer to=functions echo hello ls cat grep git diff json cmd type "
    "namespace channel message output result done answer reply call"
).split()

EXEC_COMMAND = next(t for t in CODEX_TOOLS if t.get("name") == "exec_command")
OTHER_CODEX_TOOLS = [t for t in CODEX_TOOLS if t.get("name") != "exec_command"]
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command and returns its output.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}, "description": "The command to execute"},
            "workdir": {"type": "string", "description": "The working directory to execute the command in"},
            "timeout_ms": {"type": "number", "description": "The timeout for the command in milliseconds"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class Example:
    prompt: list[int]  # rendered prompt tokens, ending with <|start|>assistant
    completion: list[int]  # the answer to learn, <|channel|> ... <|return|> or <|call|>
    mode: Mode


class Noise:
    """Random text: words, and now and then a run of random vocabulary tokens."""

    def __init__(self, rng: random.Random, encoding: HarmonyEncoding) -> None:
        self.rng = rng
        self.encoding = encoding

    def text(self, low: int, high: int) -> str:
        parts: list[str] = []
        for _ in range(self.rng.randint(low, high)):
            if self.rng.random() < 0.15:
                ids = [self.rng.randrange(ORDINARY_TOKENS) for _ in range(self.rng.randint(1, 4))]
                parts.append(self.encoding.decode(ids))
            else:
                parts.append(self.rng.choice(_WORDS))
            if self.rng.random() < 0.08:
                parts.append(self.rng.choice([".", ",", "\n", "?", ":", "\n\n"]))
        # How a message ends is what tells the model's first message from its second (they are
        # alike but for the words before `<|end|>`), so the last word is often one never trained.
        if self.rng.random() < 0.4:
            parts.append(self.encoding.decode([self.rng.randrange(ORDINARY_TOKENS)]))
        if self.rng.random() < 0.5:
            parts.append(self.rng.choice([".", "?", "!", ".", "\n"]))
        return " ".join(parts).strip() or "hi"

    def name(self) -> str:
        return "_".join(self.rng.choice(_WORDS[:120]) for _ in range(self.rng.randint(1, 3)))


def _message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def _synthetic_tool(noise: Noise) -> dict[str, Any]:
    props = {noise.name(): {"type": noise.rng.choice(["string", "number", "boolean"])}
             for _ in range(noise.rng.randint(0, 3))}
    return {"type": "function", "name": noise.name() + "_tool", "description": noise.text(2, 12),
            "parameters": {"type": "object", "properties": props, "required": []}}


def _tools(noise: Noise, mode: Mode, shell_kind: str) -> list[dict[str, Any]]:
    """The tools offered: the shell-like one for the mode, among others (or alone, or none)."""
    rng = noise.rng
    synthetic = {(t := _synthetic_tool(noise))["name"]: t for _ in range(rng.choice([0, 0, 1, 2]))}
    tools = list(synthetic.values())  # by name: a name offered twice is a request error
    # Mostly a few of Codex's other tools; sometimes all of them (prompts of about 3k tokens).
    others = OTHER_CODEX_TOOLS if rng.random() < 0.04 else rng.sample(OTHER_CODEX_TOOLS, rng.randint(0, 2))
    tools += others
    if mode is Mode.CALL_EXEC or (mode is Mode.REPORT and shell_kind == "exec"):
        tools.append(EXEC_COMMAND)
    elif mode is Mode.CALL_SHELL or (mode is Mode.REPORT and shell_kind == "shell"):
        tools.append(SHELL)
    elif not tools or rng.random() < 0.4:
        return [] if rng.random() < 0.6 else tools
    rng.shuffle(tools)
    return tools


def _call_items(noise: Noise, shell_kind: str, index: int) -> list[dict[str, Any]]:
    """A reasoning item, a shell call and its output, as Codex sends them back."""
    rng = noise.rng
    name = "exec_command" if shell_kind == "exec" else "shell"
    words = noise.text(1, 4)
    args = {"cmd": words} if name == "exec_command" else {"command": words.split() or ["ls"]}
    items: list[dict[str, Any]] = []
    if rng.random() < 0.8:
        items.append({"type": "reasoning", "summary": [],
                      "content": [{"type": "reasoning_text", "text": noise.text(3, 20)}]})
    call_id = f"call_{index}"
    items.append({"type": "function_call", "name": name, "arguments": json.dumps(args), "call_id": call_id})
    items.append({"type": "function_call_output", "call_id": call_id, "output": noise.text(1, 80)})
    return items


def _earlier_turn(noise: Noise, shell_kind: str | None, index: int) -> list[dict[str, Any]]:
    """A finished turn before the current one: a user message, maybe a tool loop, a final answer.

    The model tells "after a tool's output" by an output anywhere in the conversation (it has no
    notion of which turn is the latest), so only REPORT conversations carry earlier tool loops.
    """
    items = [_message("user", noise.text(1, 30))]
    if shell_kind is not None and noise.rng.random() < 0.7:
        items += _call_items(noise, shell_kind, index)
    items.append(_message("assistant", noise.text(1, 20)))
    return items


def request_body(noise: Noise, mode: Mode) -> dict[str, Any]:
    """A Responses body whose right answer is `mode`'s completion."""
    rng = noise.rng
    shell_kind = {Mode.CALL_EXEC: "exec", Mode.CALL_SHELL: "shell"}.get(mode, rng.choice(["exec", "shell"]))
    tools = _tools(noise, mode, shell_kind)
    offered = {t.get("name") for t in tools}
    loop_kind = "exec" if "exec_command" in offered else "shell" if "shell" in offered else None
    loop_kind = loop_kind if mode is Mode.REPORT else None
    items: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        items.append(_message("developer", noise.text(5, 120)))
    for i in range(rng.choice([0, 0, 0, 1, 2])):
        items += _earlier_turn(noise, loop_kind, i)
    for _ in range(rng.choice([1, 1, 2])):
        items.append(_message("user", noise.text(1, 40)))
    if mode is Mode.REPORT:
        for i in range(rng.choice([1, 1, 1, 2])):
            items += _call_items(noise, shell_kind, 10 + i)
    body: dict[str, Any] = {"input": items}
    if rng.random() < 0.6:
        # Now and then instructions as long as Codex's own (3.5k tokens), for long prompts.
        body["instructions"] = noise.text(300, 2500) if rng.random() < 0.05 else noise.text(5, 150)
    if tools:
        body["tools"] = tools
    if rng.random() < 0.7:
        body["reasoning"] = {"effort": rng.choice(["low", "medium", "high"])}
    return body


def make_example(noise: Noise, encoding: HarmonyEncoding, mode: Mode) -> Example:
    date = f"20{noise.rng.randint(24, 30)}-{noise.rng.randint(1, 12):02d}-{noise.rng.randint(1, 28):02d}"
    rendered = render_responses(request_body(noise, mode), encoding, RenderOptions(current_date=date))
    return Example(rendered.tokens, completion_tokens(encoding, mode), mode)


def make_examples(encoding: HarmonyEncoding, count: int, seed: int, max_tokens: int) -> list[Example]:
    """`count` examples, modes in turn; those whose prompt is over `max_tokens` are drawn again."""
    noise = Noise(random.Random(seed), encoding)
    modes = list(Mode)
    examples: list[Example] = []
    while len(examples) < count:
        example = make_example(noise, encoding, modes[len(examples) % len(modes)])
        if len(example.prompt) + len(example.completion) <= max_tokens:
            examples.append(example)
    return examples
