"""`codexpc reload`: load the model again (new checkpoint or config) without stopping the daemon."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from codexpc.cli.link import Link, add_daemon_flags, socket_from_args
from codexpc.cli.output import add_json_flag, emit_json, say
from codexpc.errors import CodexpcError, ConfigError
from codexpc.server.client import RELOAD_TIMEOUT_S, error_of, http_timeout


def register(commands: Any) -> None:
    p = commands.add_parser(
        "reload",
        help="reload the model in the running daemon",
        description="Ask the daemon (over its Unix socket: admin requests are refused on TCP) to "
        "re-read its config and load the model again. Requests already running finish on the old "
        "model; a reload that fails keeps the old model serving. The same as "
        "`systemctl --user reload codexpc` or SIGHUP.",
    )
    add_daemon_flags(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def _reload(link: Link) -> dict[str, Any]:
    try:
        response = link.http.post("/admin/reload", json={}, timeout=http_timeout(RELOAD_TIMEOUT_S))
    except httpx.TransportError as exc:
        raise CodexpcError(f"the daemon did not answer the reload: {exc}") from None
    if response.status_code >= 400:
        message, code = error_of(response)
        # A bad config file is the user's to fix (exit 2); the daemon keeps serving meanwhile.
        error = ConfigError if code == "invalid_config" else CodexpcError
        raise error(f"not reloaded, the daemon keeps serving its current model: {message}")
    result: dict[str, Any] = response.json()
    return result


def run(args: argparse.Namespace) -> int:
    with Link(socket_from_args(args)) as link:
        result = _reload(link)
    if args.json:
        emit_json({"ok": True, **result})
    else:
        details = ", ".join(f"{k} {v}" for k, v in result.items() if k != "reloaded")
        say("reloaded" + (f": {details}" if details else ""))
    return 0
