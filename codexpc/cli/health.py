"""`codexpc health`: is a daemon running, and what is it serving?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx

from codexpc.cli.link import Link, add_daemon_flags, socket_from_args
from codexpc.cli.output import add_json_flag, emit_json, say
from codexpc.errors import CodexpcError, DaemonNotRunning, UnavailableError
from codexpc.server.client import error_of

# /health's `status` while the daemon answers but its model is not ready (a 503)
NOT_READY = ("loading", "failed")


def register(commands: Any) -> None:
    p = commands.add_parser(
        "health",
        aliases=["status"],
        help="ask the running daemon how it is (alias: status)",
        description="Ask the daemon on the Unix socket for its model, device, memory and uptime. "
        "Exit code 1 while its model is still loading (or failed to load), 5 when no daemon is running.",
    )
    add_daemon_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def format_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def _mib(value: Any) -> str:
    return f"{value / 2**20:.0f} MiB" if isinstance(value, int | float) else str(value)


def show(info: dict[str, Any], socket_path: str) -> None:
    engine = info.get("engine", {})
    say(f"codexpc is running ({info.get('status', '?')}) on {socket_path}")
    say(f"  model       {info.get('model')} (engine {engine.get('kind')}, {engine.get('state')}, device {info.get('device')})")
    say(f"  checkpoint  {info.get('checkpoint')}")
    say(f"  context     {engine.get('context_length')} tokens")
    stats = engine.get("stats") or {}
    if "constrained_decoding" in stats:
        state = "on" if stats["constrained_decoding"] else "off (validation only)"
        say(f"  constrained decoding {state}; {stats.get('constraint_failures', 0)} sequences fell back")
    say(f"  uptime      {format_duration(float(info.get('uptime_s', 0)))}; in flight {info.get('in_flight', 0)}; reloads {info.get('reloads', 0)}")
    memory = info.get("memory", {})
    if memory:
        say("  memory      " + ", ".join(f"{k} {_mib(v)}" for k, v in memory.items()))


def show_not_ready(info: dict[str, Any], socket_path: str) -> None:
    engine = info.get("engine", {})
    say(f"codexpc is running on {socket_path} but not ready: {info.get('error', {}).get('message')}")
    say(f"  model       {info.get('model')} (engine {engine.get('kind')}, {engine.get('state')}, device {info.get('device')})")
    say(f"  checkpoint  {info.get('checkpoint')}")
    say(f"  loading     {format_duration(float(engine.get('loading_s', 0)))}")


def _get_health(path: Path) -> tuple[int, dict[str, Any]]:
    """/health's status code and body; a 503 that says "loading" or "failed" is an answer too."""
    with Link(path) as link:
        try:
            response = link.http.get("/health")
        except httpx.TransportError as exc:
            raise DaemonNotRunning(f"the daemon at {path} did not answer: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not (response.status_code == 200 or body.get("status") in NOT_READY):
        message, _ = error_of(response)
        raise CodexpcError(f"the daemon answered {response.status_code}: {message}")
    return response.status_code, body


def run(args: argparse.Namespace) -> int:
    path = socket_from_args(args)
    try:
        status, info = _get_health(path)
    except DaemonNotRunning as exc:
        if args.json:
            emit_json({"ok": False, "running": False, "socket": str(path), "error": str(exc)})
        else:
            say(str(exc))
        return DaemonNotRunning.exit_code
    if args.json:
        emit_json({"ok": status == 200, "running": True, "socket": str(path), **info})
    elif status == 200:
        show(info, str(path))
    else:
        show_not_ready(info, str(path))
    return 0 if status == 200 else UnavailableError.exit_code
