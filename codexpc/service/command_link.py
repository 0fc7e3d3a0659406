"""The `codexpc` command on the user's PATH: a link in ~/.local/bin to this installation's script.

`make setup` installs the script into the project's .venv/bin, which no new shell searches; the
usual home of a user's own commands is ~/.local/bin (what pipx and `uv tool` use too). A link,
not a copy: the script's first line names the venv's python, so the link stays right for as
long as the venv does, and `codexpc uninstall` removes it only while it points here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from codexpc import settings
from codexpc.errors import CodexpcError

COMMAND = "codexpc"


@dataclass(frozen=True)
class CommandLink:
    path: Path  # the link, ~/.local/bin/codexpc
    target: Path  # this installation's script
    on_path: bool  # a new shell finds it by name
    note: str | None  # what the user still has to do, if anything


def installed_script() -> Path:
    """The `codexpc` script pip wrote beside this interpreter (absolute, links not resolved)."""
    script = Path(sys.executable).absolute().parent / COMMAND
    if not script.is_file():
        raise CodexpcError(f"no {COMMAND} script beside {sys.executable}: install the package first (make setup)")
    return script


def link_command(bin_dir: Path | None = None) -> CommandLink:
    target = installed_script()
    folder = bin_dir or settings.user_bin_dir()
    path = folder / COMMAND
    if path.exists() and not path.is_symlink():
        raise CodexpcError(f"{path} exists and is not a link (another codexpc install?); remove it first")
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{COMMAND}.new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, path)  # atomic: a shell never sees the command missing
    on_path = folder in settings.path_dirs()
    note = None if on_path else (
        f"{folder} is not on your PATH: add `export PATH=\"{folder}:$PATH\"` to your shell's startup "
        "file (~/.bashrc, ~/.zshrc), then open a new shell")
    return CommandLink(path, target, on_path, note)


def unlink_command(bin_dir: Path | None = None) -> Path | None:
    """Remove the link if it points to this installation; the path removed, or None."""
    path = (bin_dir or settings.user_bin_dir()) / COMMAND
    try:
        ours = path.is_symlink() and Path(os.readlink(path)) == installed_script()
    except CodexpcError:
        return None
    if not ours:
        return None
    path.unlink()
    return path
