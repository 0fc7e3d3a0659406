"""The systemd user unit: written to ~/.config/systemd/user/codexpc.service."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from codexpc import settings
from codexpc.service.spec import NAME, ServiceSpec

UNIT = f"{NAME}.service"
RESTART_SEC = 1  # seconds between a crash and the restart


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
# A crash (a signal, kill -9, an OOM kill, a non-zero exit) restarts it after a second: the
# kernels are on disk (settings.kernel_cache_dir), so Codex's reconnecting turn is answered soon.
# A clean exit (SIGTERM from `systemctl stop` or a user) stays stopped.
Restart=on-failure
RestartSec={RESTART_SEC}
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


@dataclass(frozen=True)
class UnitService:
    """What systemd runs for a unit: render_unit read back, as the service manager reads it."""

    argv: tuple[str, ...]
    environment: dict[str, str]
    working_directory: Path
    restart: str
    restart_sec: float
    restart_prevent_exit_status: frozenset[int]

    def restarts_after(self, returncode: int) -> bool:
        """Whether systemd restarts a main process that ended with `returncode` (negative: the
        signal that killed it, as subprocess reports it)."""
        if self.restart == "always":
            return True
        if self.restart != "on-failure":
            return False
        return returncode != 0 and returncode not in self.restart_prevent_exit_status


def _unquote_words(text: str) -> list[str]:
    """Words of an ExecStart= or Environment= line as written by _quote (quotes, `\\` escapes,
    `%%` and `$$` doubled)."""
    words, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] != '"':
            end = text.find(" ", i)
            end = len(text) if end < 0 else end
            words.append(text[i:end])
            i = end
            continue
        word, i = [], i + 1
        while text[i] != '"':
            if text[i] == "\\":
                i += 1
            word.append(text[i])
            i += 1
        words.append("".join(word).replace("%%", "%").replace("$$", "$"))
        i += 1
    return words


def read_unit(text: str) -> UnitService:
    """The [Service] section of a unit written by render_unit."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    environment = dict(word.split("=", 1) for line in values.get("Environment", []) for word in _unquote_words(line))
    return UnitService(
        argv=tuple(_unquote_words(values["ExecStart"][0])),
        environment=environment,
        working_directory=Path(values["WorkingDirectory"][0].replace("%%", "%")),
        restart=values.get("Restart", ["no"])[0],
        restart_sec=float(values.get("RestartSec", ["0.1"])[0]),  # systemd's default is 100 ms
        restart_prevent_exit_status=frozenset(int(v) for v in values.get("RestartPreventExitStatus", [""])[0].split()),
    )


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
