"""`codexpc reload`: load the model again (new checkpoint or config) without stopping the daemon."""

from __future__ import annotations

import argparse
from typing import Any

from codexpc.cli.link import Link, add_daemon_flags, socket_from_args
from codexpc.cli.output import add_json_flag, emit_json, say
from codexpc.server.client import RELOAD_TIMEOUT_S


def register(commands: Any) -> None:
    p = commands.add_parser(
        "reload",
        help="reload the model in the running daemon",
        description="Ask the daemon (over its Unix socket: admin requests are refused on TCP) to "
        "re-read its config and load the model again. Requests already running finish on the old "
        "model. The same as `systemctl --user reload codexpc` or SIGHUP.",
    )
    add_daemon_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with Link(socket_from_args(args)) as link:
        result = link.post("/admin/reload", {}, timeout_s=RELOAD_TIMEOUT_S)
    if args.json:
        emit_json({"ok": True, **result})
    else:
        details = ", ".join(f"{k} {v}" for k, v in result.items() if k != "reloaded")
        say("reloaded" + (f": {details}" if details else ""))
    return 0
