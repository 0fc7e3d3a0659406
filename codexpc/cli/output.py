"""How commands talk to people and to scripts: human lines on stdout, or one JSON document."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO


def add_json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")


def emit_json(data: Mapping[str, Any], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout  # looked up late: tests and redirections replace sys.stdout
    stream.write(json.dumps(data, indent=2, default=str) + "\n")
    stream.flush()


def say(text: str = "", stream: TextIO | None = None, end: str = "\n") -> None:
    stream = stream or sys.stdout  # looked up late: tests and redirections replace sys.stdout
    stream.write(text + end)
    stream.flush()


def warn(text: str) -> None:
    say(text, sys.stderr)


@dataclass
class Progress:
    """A one-line progress bar on stderr; silent when stderr is not a terminal or in --json mode."""

    total: int
    label: str
    enabled: bool = field(default_factory=lambda: sys.stderr.isatty())
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    width: int = 30

    def advance(self, step: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + step)
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s {note:<24}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
