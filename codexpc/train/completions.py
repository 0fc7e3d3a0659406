"""What the trained tiny model answers: one fixed Harmony completion per situation.

The rendered prompt ends with `<|start|>assistant`, so every completion starts at `<|channel|>`.
Each situation's analysis sentence differs from the others from its first token on: the model
decides the situation once, at that token, and every later token follows from the few before it.
"""

from __future__ import annotations

import enum
import json

from openai_harmony import HarmonyEncoding


class Mode(enum.Enum):
    ANSWER = "answer"  # no shell-like tool offered: a short analysis, then a final answer
    CALL_EXEC = "call_exec"  # Codex's exec_command offered: call it
    CALL_SHELL = "call_shell"  # a `shell` function offered (and no exec_command): call it
    REPORT = "report"  # the latest turn ended with a tool's output: answer finally


EXEC_ARGUMENTS = {"cmd": "echo hello"}
SHELL_ARGUMENTS = {"command": ["echo", "hello"]}

ANSWER_ANALYSIS = "The user wrote to me. I will reply briefly."
ANSWER_FINAL = "Hello from the tiny trained model."
CALL_EXEC_ANALYSIS = "I should run a command to look."
CALL_SHELL_ANALYSIS = "Let me use the shell tool first."
REPORT_ANALYSIS = "Now the tool has run and its output is in."
REPORT_FINAL = "Done: the command ran."


def _analysis(text: str) -> str:
    return f"<|channel|>analysis<|message|>{text}<|end|><|start|>assistant"


def _call(name: str, arguments: dict[str, object]) -> str:
    # Compact JSON: fewer tokens to learn, and the schema validator takes it as any JSON.
    args = json.dumps(arguments, separators=(",", ":"))
    return f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{args}<|call|>"


COMPLETIONS: dict[Mode, str] = {
    Mode.ANSWER: _analysis(ANSWER_ANALYSIS) + f"<|channel|>final<|message|>{ANSWER_FINAL}<|return|>",
    Mode.CALL_EXEC: _analysis(CALL_EXEC_ANALYSIS) + _call("exec_command", EXEC_ARGUMENTS),
    Mode.CALL_SHELL: _analysis(CALL_SHELL_ANALYSIS) + _call("shell", SHELL_ARGUMENTS),
    Mode.REPORT: _analysis(REPORT_ANALYSIS) + f"<|channel|>final<|message|>{REPORT_FINAL}<|return|>",
}


def completion_tokens(encoding: HarmonyEncoding, mode: Mode) -> list[int]:
    return list(encoding.encode(COMPLETIONS[mode], allowed_special="all"))
