"""The systemd user unit: written to ~/.config/systemd/user/codexpc.service."""

from __future__ import annotations

import shutil
from pathlib import Path

from codexpc import settings
from codexpc.service.spec import NAME, ServiceSpec

UNIT = f"{NAME}.service"


def unit_dir() -> Path:
    base = settings.env("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "systemd" / "user"


def unit_path() -> Path:
    return unit_dir() / UNIT


def _quote(word: str) -> str:
    """One argument as systemd reads it: quoted, `\\` and `"` escaped, `%` and `$` doubled."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def render_unit(spec: ServiceSpec) -> str:
    exec_start = " ".join(_quote(w) for w in spec.program)
    environment = "\n".join(f"Environment={_quote(f'{k}={v}')}" for k, v in sorted(spec.environment.items()))
    return f"""\
# Written by `codexpc install`; `codexpc uninstall` removes it.
[Unit]
Description=codexpc: gpt-oss served to Codex over the Responses API

[Service]
Type=simple
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory={str(spec.working_directory).replace("%", "%%")}
{environment}
Restart=on-failure
RestartSec=5
# A bad setting, no vocabulary, a bad checkpoint (codexpc.errors' exit codes) will not mend by
# restarting: stop and let `systemctl --user status codexpc` show why.
RestartPreventExitStatus=2 3 4
# Loading a model and finishing streams on SIGTERM both take a while.
TimeoutStartSec=600
TimeoutStopSec=30
StandardOutput=journal
StandardError=journal
SyslogIdentifier={NAME}

[Install]
WantedBy=default.target
"""


def manager_problem() -> str | None:
    """None when a systemd user manager can be driven from here; else why not."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    runtime = settings.env("XDG_RUNTIME_DIR")
    bus = settings.env("DBUS_SESSION_BUS_ADDRESS")
    if bus is None and not (runtime and (Path(runtime) / "bus").exists()):
        where = f"{runtime}/bus" if runtime else "$XDG_RUNTIME_DIR (unset)"
        return f"no systemd user manager is running here (no user bus at {where}; a container?)"
    return None


def enable_commands() -> list[list[str]]:
    return [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT],
        # restart, not start: a reinstall must pick up the new unit and package.
        ["systemctl", "--user", "restart", UNIT],
    ]


def disable_commands() -> list[list[str]]:
    return [["systemctl", "--user", "disable", "--now", UNIT]]


def after_remove_commands() -> list[list[str]]:
    return [["systemctl", "--user", "daemon-reload"]]


def logs_command(since: str | None, follow: bool, pid: int | None = None) -> list[str]:
    cmd = ["journalctl", "--user", "-u", UNIT, "--no-pager", "-o", "short-iso"]
    if pid is not None:
        cmd.append(f"_PID={pid}")
    if since:
        cmd += ["--since", since]
    if follow:
        cmd.append("--follow")
    return cmd
