"""`codexpc smoke`: one streaming request end to end, with its timeline, TTFT and tokens/s.

With a daemon already running it uses that daemon (no load: the output says it was warm); one
still loading its model is waited for, up to --start-timeout, unless --checkpoint names another
checkpoint than the one it loads (its /health says which, while loading too).
Otherwise it starts one for the run, serving the checkpoint named, or a tiny random checkpoint
that it builds once and keeps in the cache folder.

Random weights emit noise, not Harmony, so their response may end failed (invalid_model_output)
or incomplete (the token limit came first). Smoke judges that the same whoever started the
daemon: it knows random weights by the name it serves them under or by the RANDOM_WEIGHTS.txt
that `codexpc checkpoint write` puts beside them; a real model's failed response still fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from codexpc import settings
from codexpc.checkpoint.writer import is_random, mark_random
from codexpc.cli import daemon_proc, timeline
from codexpc.cli.health import format_duration
from codexpc.cli.link import LOAD_WAIT_S, Link, probe, request_body, socket_from_args, wait_for_load
from codexpc.cli.output import Progress, add_json_flag, emit_json, say, warn
from codexpc.errors import CheckpointError, CodexpcError

DEFAULT_PROMPT = "Say hello in one short sentence."
TINY_LAYOUT = "original"


def register(commands: Any) -> None:
    p = commands.add_parser(
        "smoke",
        help="one streaming request end to end, timed",
        description="Send one streaming Responses request and print the event timeline, time to first "
        "token and tokens/s. Uses the running daemon if there is one (warm: no load); else starts a "
        "daemon for the run on --checkpoint, or on a tiny random checkpoint built once and cached.",
    )
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="serve this checkpoint for the run")
    p.add_argument("--engine", choices=("auto", "torch", "paged", "mlx", "scripted"), help="engine of a daemon started for the run")
    p.add_argument("--device", help="device of a daemon started for the run")
    p.add_argument("--config", type=Path, metavar="FILE", help="config file naming the daemon's socket")
    p.add_argument("--socket", type=Path, metavar="PATH", help="the running daemon's Unix socket")
    p.add_argument("--fresh", action="store_true", help="start a daemon for the run even if one is running")
    p.add_argument("--keep", action="store_true",
                   help="leave the daemon it starts running on the usual socket and port, for the next command")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"the user message to send (default {DEFAULT_PROMPT!r})")
    p.add_argument("--max-output-tokens", type=int, default=48, metavar="N",
                   help="stop the answer after N tokens (default 48)")
    p.add_argument("--start-timeout", type=float, default=LOAD_WAIT_S, metavar="S",
                   help="seconds to wait for a load (of the daemon it starts, or of a running one still loading)")
    add_json_flag(p)
    p.set_defaults(run=run)


SYNTHETIC_MODEL = "gpt-oss-tiny-random"


def tiny_checkpoint() -> Path:
    """The tiny random checkpoint, written once under the cache folder (atomically: by rename)."""
    final = settings.cache_dir() / "checkpoints" / f"tiny-{TINY_LAYOUT}"
    if final.exists():
        if not is_random(final):  # built by a codexpc that wrote no marker
            mark_random(final, "the tiny checkpoint of codexpc smoke")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tiny-"))
    try:
        from codexpc.cli.checkpoint import write

        write("tiny", TINY_LAYOUT, partial / "ckpt")
        os.replace(partial / "ckpt", final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def _same_checkpoint(health: dict[str, Any], wanted: Path | None) -> bool:
    return wanted is None or Path(str(health.get("checkpoint"))).resolve() == wanted.resolve()


def _serves_another(socket_path: Path, wanted: Path | None) -> bool:
    """True when the daemon there, ready or loading, names a checkpoint other than `wanted`
    (then there is nothing to wait for); False when it is the same, unknown, or unreadable."""
    if wanted is None:
        return False
    try:
        with Link(socket_path) as link:
            health = link.http.get("/health").json()  # 503 while loading, with the same fields
    except (CodexpcError, httpx.HTTPError, ValueError):  # any doubt: wait_for_load asks again, says what is wrong
        return False
    return isinstance(health, dict) and health.get("checkpoint") is not None and not _same_checkpoint(health, wanted)


def _start_daemon(args: argparse.Namespace, checkpoint: Path, quiet: bool,
                  keep_at: Path | None, synthetic: bool) -> daemon_proc.ChildDaemon:
    serve_args = ["--checkpoint", str(checkpoint)]
    if synthetic:  # served under its own name, so no output can pass it off as gpt-oss-20b
        serve_args += ["--model", SYNTHETIC_MODEL]
    if args.engine:
        serve_args += ["--engine", args.engine]
    if args.device:
        serve_args += ["--device", args.device]
    progress = Progress(total=1, label="loading", enabled=Progress(1, "").enabled and not quiet)
    try:
        return daemon_proc.start(serve_args, args.start_timeout, on_wait=lambda s: progress.advance(0, f"{s:.0f}s"),
                                 keep_at=keep_at)
    finally:
        progress.close()


def run(args: argparse.Namespace) -> int:
    socket_path = socket_from_args(args)
    child: daemon_proc.ChildDaemon | None = None
    synthetic = False
    if args.checkpoint is not None and not args.checkpoint.exists():
        raise CheckpointError(f"checkpoint {args.checkpoint} does not exist")
    warm_health: dict[str, Any] | None = None
    waited_s = 0.0
    kept = False
    if not args.fresh and probe(socket_path) is None and not _serves_another(socket_path, args.checkpoint):
        health, waited_s = wait_for_load(socket_path, args.start_timeout, warn if args.json else say)
        if _same_checkpoint(health, args.checkpoint):
            warm_health = health
    try:
        if warm_health is not None and waited_s:
            how = f"using the running daemon on {socket_path} (waited {waited_s:.1f}s for its load)"
        elif warm_health is not None:
            how = f"using the running daemon on {socket_path} (warm: up {format_duration(warm_health['uptime_s'])}, no load)"
        else:
            synthetic = args.checkpoint is None
            checkpoint = args.checkpoint or tiny_checkpoint()
            keep_at = socket_path if args.keep and not args.fresh else None
            kept = keep_at is not None
            child = _start_daemon(args, checkpoint, args.json, keep_at, synthetic)
            socket_path = child.socket_path
            what = "tiny random checkpoint" if synthetic else "checkpoint"
            how = f"started a daemon for this run ({what} {checkpoint}): ready in {child.load_s:.1f}s"
            if keep_at is not None:
                how += f"; left running (pid {child.process.pid}) on {keep_at}: stop it with kill {child.process.pid}"
        with Link(socket_path) as link:
            health = warm_health or link.get("/health")
            body = request_body(str(health["model"]), args.prompt, args.max_output_tokens)
            line = timeline.Timeline()
            for event in link.stream("/v1/responses", body):
                line.add(event)
    finally:
        if child is not None and not kept:
            child.stop()
    return _report(args, how, health, line, synthetic or serves_random_weights(health),
                   warm_health is not None and not waited_s)


def serves_random_weights(health: dict[str, Any]) -> bool:
    """The daemon behind `health` serves random weights: the name smoke serves them under, or
    the marker beside its checkpoint (smoke runs on the daemon's machine and reads its files)."""
    if health.get("model") == SYNTHETIC_MODEL:
        return True
    checkpoint = health.get("checkpoint")
    return isinstance(checkpoint, str) and is_random(Path(checkpoint))


def _verdict(line: timeline.Timeline, random_weights: bool) -> tuple[bool, str]:
    problem = line.well_formed()
    if problem is not None:
        return False, f"FAIL: {problem}"
    if line.outcome == "response.failed" and not random_weights:
        return False, f"FAIL: the response failed: {line.summary()['error']}"
    if random_weights and line.outcome != "response.completed":
        # Random weights emit noise, not Harmony: a clean end is the correct answer to it.
        why = "it failed cleanly" if line.outcome == "response.failed" else "it hit the token limit"
        return True, f"PASS: a well-formed stream (random weights: the output is noise, so {why})"
    return True, f"PASS: a well-formed stream ending in {line.outcome}"


def _report(args: argparse.Namespace, how: str, health: dict[str, Any], line: timeline.Timeline,
            random_weights: bool, warm: bool) -> int:
    ok, verdict = _verdict(line, random_weights)
    summary = line.summary()
    if args.json:
        emit_json({"ok": ok, "warm": warm, "how": how, "model": health.get("model"), "device": health.get("device"),
                   "random_weights": random_weights, "verdict": verdict, **summary})
        return 0 if ok else 1
    say(f"codexpc smoke: {how}")
    say(f"model {health.get('model')} on {health.get('device')} (engine {health.get('engine', {}).get('kind')})")
    say(f"request: {args.prompt!r}, at most {args.max_output_tokens} output tokens")
    for row in timeline.render(line.rows):
        say("  " + row)
    say(_figures(summary))
    if summary["text"]:
        say(f"text: {summary['text']!r}")
    say(verdict)
    return 0 if ok else 1


def _figures(summary: dict[str, Any]) -> str:
    """One line of timings. With no text at all (random weights), time to first token and the
    rate after it do not exist; the output's overall rate says how fast the engine went."""
    ttft, rate, total, tokens = summary["ttft_s"], summary["tokens_per_s"], summary["total_s"], summary["output_tokens"]
    whole = f" in {total:.2f}s in all" if total else ""
    if ttft is not None:
        speed = f", {rate:.1f} tokens/s after the first" if rate else ""
        head = f"time to first token {ttft * 1000:.1f} ms; {tokens} output tokens{whole}{speed}"
    else:
        overall = f", {tokens / total:.1f} tokens/s overall" if tokens and total else ""
        head = f"no text streamed, so no time to first token; {tokens} output tokens{whole}{overall}"
    return f"{head}; prompt {summary['input_tokens']} tokens ({summary['cached_tokens']} cached)"
