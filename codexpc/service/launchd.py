"""The launchd agent: ~/Library/LaunchAgents/dev.codexpc.daemon.plist."""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from pathlib import Path

from codexpc.service.spec import ServiceSpec

LABEL = "dev.codexpc.daemon"


def plist_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def render_plist(spec: ServiceSpec) -> bytes:
    log = str(spec.log_file) if spec.log_file else "/tmp/codexpc.launchd.log"
    agent = {
        "Label": LABEL,
        "ProgramArguments": list(spec.program),
        "EnvironmentVariables": dict(spec.environment),
        "WorkingDirectory": str(spec.working_directory),
        "RunAtLoad": True,
        # Restart after a crash, not after a clean exit (systemd's Restart=on-failure).
        "KeepAlive": {"SuccessfulExit": False},
        # At most one spawn per 5 s: a daemon that crashes after running a while is respawned at
        # once (launchd delays only a job that dies within 5 s of its start).
        "ThrottleInterval": 5,
        "ProcessType": "Interactive",  # not throttled as a background job: it serves a user
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    return plistlib.dumps(agent)


def manager_problem() -> str | None:
    if sys.platform != "darwin":
        return "launchd runs only on macOS"
    if shutil.which("launchctl") is None:
        return "launchctl is not installed"
    return None


def _domain() -> str:
    return f"gui/{os.getuid()}"


def enable_commands() -> list[list[str]]:
    return [
        # bootout first so a reinstall loads the new plist; its failure (not loaded) is fine.
        ["launchctl", "bootout", f"{_domain()}/{LABEL}"],
        ["launchctl", "bootstrap", _domain(), str(plist_path())],
        ["launchctl", "kickstart", "-k", f"{_domain()}/{LABEL}"],
    ]


def disable_commands() -> list[list[str]]:
    return [["launchctl", "bootout", f"{_domain()}/{LABEL}"]]
