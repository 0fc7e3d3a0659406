"""`codexpc warmup`: make the running daemon load and compile before the first real request.

The first request of each prompt-length bucket pays for kernel compilation and graph capture;
warmup pays it up front with short generations over growing prompts, behind a progress bar.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from codexpc.cli.link import (
    LOAD_WAIT_S,
    Link,
    add_daemon_flags,
    probe,
    request_body,
    socket_from_args,
    wait_for_load,
)
from codexpc.cli.output import Progress, add_json_flag, emit_json, say, warn
from codexpc.errors import CodexpcError

# Rough prompt sizes in tokens: a chat turn, a Codex first turn (10k+ tokens), a long session.
PROMPT_TOKENS = (16, 1024, 4096, 16384)
FILLER = "The quick brown fox jumps over the lazy dog. "  # about 10 tokens


def register(commands: Any) -> None:
    p = commands.add_parser(
        "warmup",
        help="load and compile the running daemon's model",
        description="Wait for the daemon to finish loading, then run short generations over "
        "growing prompts so that compilation happens now, not in your first Codex turn.",
    )
    add_daemon_flags(p)
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help=f"wait up to S seconds for a daemon to answer, and for its load up to S or "
                   f"{LOAD_WAIT_S:.0f}, whichever is longer")
    p.add_argument("--max-prompt-tokens", type=int, default=PROMPT_TOKENS[-1], metavar="N",
                   help=f"the longest prompt to warm up (default {PROMPT_TOKENS[-1]}; sizes "
                   f"{', '.join(map(str, PROMPT_TOKENS))} up to it)")
    add_json_flag(p)
    p.set_defaults(run=run)


def _wait_for(args: argparse.Namespace) -> None:
    path = socket_from_args(args)
    deadline = time.monotonic() + args.wait
    while probe(path) is not None:  # no daemon yet: a service that is still starting
        if time.monotonic() >= deadline:
            Link(path).close()  # raises DaemonNotRunning with the reason
        time.sleep(0.5)
    # A daemon that answers "loading" will be ready: worth waiting for even without --wait.
    wait_for_load(path, max(args.wait, LOAD_WAIT_S), warn if args.json else say)


def _one(link: Link, model: str, tokens: int) -> float:
    body = request_body(model, FILLER * max(1, tokens // 10) + "\nReply with OK.", 4)
    started = time.monotonic()
    outcome = None
    for event in link.stream("/v1/responses", body):
        if event.name in ("response.completed", "response.incomplete", "response.failed"):
            outcome = event.name
    if outcome is None:
        raise CodexpcError(f"the warmup request of {tokens} tokens ended without a final event")
    return time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    sizes = [n for n in PROMPT_TOKENS if n <= args.max_prompt_tokens] or [PROMPT_TOKENS[0]]
    started = time.monotonic()
    _wait_for(args)
    progress = Progress(total=len(sizes), label="warmup", enabled=Progress(1, "").enabled and not args.json)
    timings: dict[int, float] = {}
    with Link(socket_from_args(args), timeout_s=60.0) as link:
        model = str(link.get("/health")["model"])
        for tokens in sizes:
            timings[tokens] = _one(link, model, tokens)
            progress.advance(1, f"{tokens} tokens {timings[tokens]:.2f}s")
    progress.close()
    total = time.monotonic() - started
    if args.json:
        emit_json({"ok": True, "model": model, "seconds": round(total, 3),
                   "requests": [{"prompt_tokens": n, "seconds": round(s, 3)} for n, s in timings.items()]})
        return 0
    say(f"warm: {model}, {len(timings)} requests in {total:.1f}s")
    for tokens, seconds in timings.items():
        say(f"  ~{tokens:>6} prompt tokens: {seconds * 1000:8.1f} ms")
    return 0
