"""`codexpc`: parse the command line, run one command, turn errors into exit codes.

Exit codes (codexpc.errors): 0 ok, 1 failure, 2 bad setting, 3 no vocabulary, 4 bad checkpoint,
5 no daemon running, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from codexpc import __version__
from codexpc.cli import checkpoint, codex, health, logs, reload, serve, service, smoke, warmup
from codexpc.cli.output import emit_json, warn
from codexpc.errors import CodexpcError

log = logging.getLogger("codexpc.cli")

# The order `codexpc --help` lists them in.
COMMAND_GROUPS = (serve, health, smoke, warmup, reload, logs, service, codex, checkpoint)

EPILOG = """\
exit codes: 0 ok, 1 failure, 2 bad setting, 3 no vocabulary, 4 bad checkpoint,
            5 no daemon running, 130 interrupted
first steps: codexpc smoke; codexpc install; codexpc codex-config; codex -p codexpc"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codexpc",
        description="Serve OpenAI's gpt-oss models to the Codex CLI from a local daemon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"codexpc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def _cli_logging(verbose: bool) -> None:
    # The CLI's own log goes to stderr; `serve` replaces this with the daemon's setup.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _cli_logging(args.verbose)
    try:
        code: int = args.run(args)
        return code
    except CodexpcError as exc:
        log.debug("command %s failed", args.command, exc_info=True)
        if getattr(args, "json", False):
            emit_json({"ok": False, "error": {"code": exc.code, "message": str(exc)}})
        warn(f"codexpc {args.command}: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`codexpc logs | head`): stop quietly with 0, as Unix tools do.
        _drop_stdout()
        return 0
    except OSError as exc:
        # A file or folder the user can fix (permissions, a full disk): the message, not a traceback.
        log.debug("command %s failed", args.command, exc_info=True)
        warn(f"codexpc {args.command}: {exc}")
        return 1
    except KeyboardInterrupt:
        warn("interrupted")
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit finds no broken
    pipe to complain about (the recipe in Python's signal module documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing to flush
        pass
