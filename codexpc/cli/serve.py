"""`codexpc serve`: the daemon in the foreground (what the user service runs)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from codexpc import logs
from codexpc.efforts import EFFORT_NAMES

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    p = commands.add_parser(
        "serve",
        help="run the daemon in the foreground",
        description="Load the model once and serve the Responses API on a Unix socket and loopback TCP "
        "until SIGTERM or Ctrl-C; SIGHUP reloads. Flags override the config file and the environment.",
    )
    add_config_flags(p)
    p.add_argument("--host", action="append", dest="hosts", metavar="ADDR", help="loopback address to bind (repeatable)")
    p.add_argument("--no-tcp", action="store_true", help="serve only the Unix socket")
    p.add_argument("--no-unix", action="store_true", help="serve only TCP")
    p.add_argument("--token-file", type=Path, help="bearer token file (mode 0600) that TCP clients must present")
    p.add_argument("--effort", choices=EFFORT_NAMES, help="default reasoning effort")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log detail (default info)")
    p.add_argument("--capture-dir", type=Path, help="debugging: write each request body here as JSON")
    p.add_argument("--max-output-tokens", type=int, metavar="N",
                   help="the most output tokens a request may ask for (default 32768)")
    p.add_argument("--queue-size", type=int, metavar="N",
                   help="requests that may wait beyond the running ones before a 503 (default 64)")
    p.set_defaults(run=run)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that builds a daemon config (serve, smoke, warmup, install)."""
    p.add_argument("--config", type=Path, metavar="FILE", help="config file (default: ~/.config/codexpc/config.toml)")
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="checkpoint folder or file of the model")
    p.add_argument("--model", metavar="NAME", help="model name clients use (default gpt-oss-20b)")
    p.add_argument("--engine", choices=("auto", "torch", "paged", "mlx", "scripted"), help="engine that runs the model")
    p.add_argument("--device", help='"auto", "cpu", "cuda", "cuda:1", ...')
    p.add_argument("--port", type=int, help="loopback TCP port (0 picks a free one)")
    p.add_argument("--socket", type=Path, metavar="PATH", help="Unix socket path")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as load_config's override keys; flags not given are None and ignored there."""
    get = lambda name: getattr(args, name, None)  # noqa: E731 - commands share only some flags
    return {
        "checkpoint": get("checkpoint"),
        "model": get("model"),
        "engine": get("engine"),
        "device": get("device"),
        "port": get("port"),
        "socket": get("socket"),
        "hosts": get("hosts"),
        "tcp": False if get("no_tcp") else None,
        "unix": False if get("no_unix") else None,
        "token_file": get("token_file"),
        "effort": get("effort"),
        "log_level": get("log_level"),
        "capture_dir": get("capture_dir"),
        "max_output_tokens": get("max_output_tokens"),
        "queue_size": get("queue_size"),
    }


def run(args: argparse.Namespace) -> int:
    from codexpc.config import load_config
    from codexpc.server.daemon import serve

    config = load_config(args.config, overrides(args))
    config.require_servable()
    where = logs.setup(config.log_level)
    log.info("codexpc serve: model %s, logging to %s", config.default_model, where)
    code = serve(config)
    _exit_now(code)
    return code  # not reached


def _exit_now(code: int) -> None:
    """End the process as soon as the daemon has stopped. By then every listener is closed and
    every stream ended; what is left is the interpreter's teardown of torch and the model, which
    took 1.5-3 s after the log said `stopped` (issue 16) and holds up a restart or a script
    waiting on the pid. Flush what is buffered, then leave without it."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
