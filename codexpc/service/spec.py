"""What the service runs, built from the installed package: absolute paths, nothing relative."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codexpc import settings

NAME = "codexpc"
# Settings worth carrying into the service when the user had them set at install time: the
# service manager starts codexpc with an almost empty environment.
PASSED_ENV: tuple[str, ...] = (
    settings.ENV_VOCAB,
    settings.ENV_CACHE_DIR,
    settings.ENV_STATE_DIR,
    settings.ENV_RUNTIME_DIR,
    settings.ENV_CONFIG,
    settings.ENV_DEVICE,
    settings.ENV_PORT,
    "CUDA_VISIBLE_DEVICES",
    "HF_HOME",
)


@dataclass(frozen=True)
class ServiceSpec:
    program: tuple[str, ...]  # argv, program first, absolute
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: Path = field(default_factory=Path.home)
    log_file: Path | None = None  # launchd only: where stdout/stderr go

    def __post_init__(self) -> None:
        assert Path(self.program[0]).is_absolute(), "a service runs absolute paths only"


def python_executable() -> Path:
    """The venv's python, absolute. Not resolved: the symlink is what makes it the venv's."""
    return Path(sys.executable).absolute()


def build_spec(serve_args: Sequence[str] = (), log_file: Path | None = None) -> ServiceSpec:
    """`python -m codexpc serve ...` from this very installation."""
    python = python_executable()
    bin_dir = str(python.parent)
    env = {
        # The venv's bin first: tools the daemon spawns (none today) come from the same install.
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "PYTHONUNBUFFERED": "1",  # a crash's last words reach the log
    }
    for name in PASSED_ENV:
        value = settings.env(name)
        if value is not None:
            env[name] = value
    return ServiceSpec(
        program=(str(python), "-m", "codexpc", "serve", *serve_args),
        environment=env,
        log_file=log_file,
    )
