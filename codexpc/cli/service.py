"""`codexpc install` / `codexpc uninstall`: the user service (systemd on Linux, launchd on macOS)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from codexpc import logs
from codexpc.cli.output import add_json_flag, emit_json, say
from codexpc.service import command_link, manager
from codexpc.service.spec import build_spec


def register(commands: Any) -> None:
    p = commands.add_parser(
        "install",
        help="install and start the user service",
        description="Write a systemd user unit (Linux) or a launchd agent (macOS) that runs "
        "`codexpc serve` from this installation at login, restarts it on failure, and sends its "
        "log to the journal or a log file. Starts it where a service manager runs; elsewhere "
        "(containers) it says what to do instead. It also links the codexpc command into "
        "~/.local/bin, so that a new shell finds it.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="config file the service passes to serve")
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="checkpoint the service serves")
    p.add_argument("--model", metavar="NAME", help="model name the service serves")
    p.add_argument("--no-start", action="store_true", help="write the service file only")
    p.add_argument("--print", action="store_true", dest="print_only", help="print the service file, change nothing")
    p.add_argument("--command-only", action="store_true",
                   help="only link the codexpc command into ~/.local/bin (no service)")
    add_json_flag(p)
    p.set_defaults(run=run_install)

    u = commands.add_parser("uninstall", help="stop and remove the user service",
                            description="Stop, disable and delete the user service, and the command's link "
                            "in ~/.local/bin if it points to this installation.")
    add_json_flag(u)
    u.set_defaults(run=run_uninstall)


def _serve_args(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    # Absolute paths: the service does not start in the folder `install` ran in.
    if args.config:
        out += ["--config", str(args.config.expanduser().absolute())]
    if args.checkpoint:
        out += ["--checkpoint", str(args.checkpoint.expanduser().absolute())]
    if args.model:
        out += ["--model", args.model]
    return out


def _report(report: manager.ServiceReport, verb: str, json_out: bool) -> int:
    if json_out:
        emit_json({"ok": True, **asdict(report)})
        return 0
    say(f"{verb} the {report.manager} service file: {report.path}")
    for line in report.commands:
        say(f"  ran: {line}")
    if report.problem:
        say(f"Not {'started' if verb == 'wrote' else 'stopped'}: {report.problem}.")
    for line in report.instructions:
        say(line)
    if report.active and verb == "wrote":
        say("Check it: codexpc health; its log: codexpc logs --follow")
    return 0


def _check_servable(args: argparse.Namespace) -> None:
    """Refuse now what would make the service fail at every start (it restarts on failure)."""
    from codexpc.config import load_config
    from codexpc.errors import CheckpointError

    if args.checkpoint and not args.checkpoint.expanduser().exists():
        raise CheckpointError(f"checkpoint {args.checkpoint} does not exist")
    load_config(args.config, {"checkpoint": args.checkpoint, "model": args.model}).require_servable()


def _report_link(link: command_link.CommandLink, json_out: bool) -> int:
    if json_out:
        emit_json({"ok": True, "command": asdict(link)})
        return 0
    say(f"linked the codexpc command: {link.path} -> {link.target}")
    if link.note:
        say(link.note)
    return 0


def run_install(args: argparse.Namespace) -> int:
    spec = build_spec(_serve_args(args), log_file=logs.log_file().with_name("launchd.log"))
    if args.print_only:
        say(manager.render(manager.platform_manager(), spec).decode(), end="")
        return 0
    if args.command_only:
        return _report_link(command_link.link_command(), args.json)
    _check_servable(args)
    report = manager.install(spec, start=not args.no_start)
    link = command_link.link_command()
    if args.json:
        emit_json({"ok": True, **asdict(report), "command": asdict(link)})
        return 0
    _report(report, "wrote", False)
    return _report_link(link, False)


def run_uninstall(args: argparse.Namespace) -> int:
    report = manager.uninstall()
    unlinked = command_link.unlink_command()
    if args.json:
        emit_json({"ok": True, **asdict(report), "command_removed": str(unlinked) if unlinked else None})
        return 0
    _report(report, "removed", False)
    if unlinked:
        say(f"removed the command's link {unlinked}")
    return 0
