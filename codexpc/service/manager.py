"""Install and remove the user service with whichever service manager this system has."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codexpc.errors import CodexpcError
from codexpc.service import launchd, systemd
from codexpc.service.spec import ServiceSpec

log = logging.getLogger(__name__)

Manager = Literal["systemd", "launchd"]
Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class ServiceReport:
    manager: Manager
    path: Path  # the unit or plist
    active: bool  # the manager was told to (re)start or stop it
    commands: tuple[str, ...]  # what was run, as shell lines
    problem: str | None  # why no manager could be driven, if so
    instructions: tuple[str, ...]  # what the user should do by hand


def platform_manager() -> Manager:
    return "launchd" if sys.platform == "darwin" else "systemd"


def service_path(manager: Manager) -> Path:
    return launchd.plist_path() if manager == "launchd" else systemd.unit_path()


def render(manager: Manager, spec: ServiceSpec) -> bytes:
    return launchd.render_plist(spec) if manager == "launchd" else systemd.render_unit(spec).encode()


def run_command(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _run_all(commands: list[list[str]], run: Runner, tolerate_first: bool = False) -> tuple[str, ...]:
    done: list[str] = []
    for i, cmd in enumerate(commands):
        line = shlex.join(cmd)
        result = run(cmd)
        done.append(line)
        if result.returncode != 0 and not (tolerate_first and i == 0):
            detail = (result.stderr or result.stdout).strip()
            raise CodexpcError(f"`{line}` failed (exit {result.returncode}): {detail}")
        log.info("service: ran %s", line)
    return tuple(done)


def _manual_steps(manager: Manager, path: Path, spec: ServiceSpec) -> tuple[str, ...]:
    if manager == "launchd":
        enable = [shlex.join(c) for c in launchd.enable_commands()[1:]]
        keep = []
    else:
        enable = ["systemctl --user daemon-reload", f"systemctl --user enable --now {systemd.UNIT}"]
        keep = ["loginctl enable-linger $USER   # keep it running after you log out"]
    return (
        f"The service file is written: {path}",
        "On a machine where the service manager runs, start it with:",
        *(f"  {line}" for line in enable + keep),
        "Here, run the daemon in the foreground (or under your own supervisor):",
        f"  {shlex.join(spec.program)}",
    )


def install(spec: ServiceSpec, *, start: bool = True, run: Runner = run_command) -> ServiceReport:
    manager = platform_manager()
    path = service_path(manager)
    _write(path, render(manager, spec))
    module = launchd if manager == "launchd" else systemd
    problem = module.manager_problem()
    if problem is not None or not start:
        steps = _manual_steps(manager, path, spec)
        return ServiceReport(manager, path, False, (), problem, steps)
    commands = _run_all(module.enable_commands(), run, tolerate_first=manager == "launchd")
    return ServiceReport(manager, path, True, commands, None, ())


def uninstall(*, run: Runner = run_command) -> ServiceReport:
    manager = platform_manager()
    path = service_path(manager)
    module = launchd if manager == "launchd" else systemd
    problem = module.manager_problem()
    commands: tuple[str, ...] = ()
    if problem is None and path.exists():
        # Stopping a service that is not loaded fails harmlessly; removing the file matters more.
        commands = _run_all(module.disable_commands(), run, tolerate_first=True)
    path.unlink(missing_ok=True)
    if problem is None and manager == "systemd":
        commands += _run_all(systemd.after_remove_commands(), run)
    return ServiceReport(manager, path, problem is None, commands, problem, ())
