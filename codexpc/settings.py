"""Every environment variable codexpc reads, and the per-user folders it uses.

Reading the environment happens here and nowhere else, so a reader can see every knob at once.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VOCAB = "CODEXPC_VOCAB"  # explicit path to o200k_base.tiktoken
ENV_CACHE_DIR = "CODEXPC_CACHE_DIR"
ENV_STATE_DIR = "CODEXPC_STATE_DIR"
ENV_RUNTIME_DIR = "CODEXPC_RUNTIME_DIR"
ENV_CONFIG = "CODEXPC_CONFIG"
ENV_DEVICE = "CODEXPC_DEVICE"  # "cuda", "cpu" or "auto"
ENV_PORT = "CODEXPC_PORT"
# Triton's own variable: where it keeps compiled kernels. codexpc sets it (unless the user did)
# so that a restarted daemon loads its kernels from disk instead of compiling them again.
ENV_TRITON_CACHE = "TRITON_CACHE_DIR"

DEFAULT_PORT = 8787


def env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _xdg(var: str, fallback: str) -> Path:
    base = env(var)
    return Path(base) if base else Path.home() / fallback


def cache_dir() -> Path:
    """Where rebuilt vocabularies and built checkpoints are kept."""
    explicit = env(ENV_CACHE_DIR)
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "codexpc"


def kernel_cache_dir() -> Path:
    """Where compiled GPU kernels are kept across restarts: Triton's cache, under ours."""
    explicit = env(ENV_TRITON_CACHE)
    return Path(explicit) if explicit else cache_dir() / "triton"


def use_kernel_cache() -> Path:
    """Point Triton at kernel_cache_dir() for this process and its children (before Triton
    compiles anything: it reads the variable when it first caches a kernel), and make it."""
    folder = kernel_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_TRITON_CACHE] = str(folder)
    return folder


def state_dir() -> Path:
    """Where the log file lives when no journal takes the logs."""
    explicit = env(ENV_STATE_DIR)
    return Path(explicit) if explicit else _xdg("XDG_STATE_HOME", ".local/state") / "codexpc"


def user_bin_dir() -> Path:
    """Where a user's own commands go: $XDG_BIN_HOME, else ~/.local/bin (on the PATH of most
    Linux desktops and of the shells that pip and pipx configure)."""
    return _xdg("XDG_BIN_HOME", ".local/bin")


def path_dirs() -> list[Path]:
    """The folders of $PATH, in order."""
    return [Path(p) for p in (env("PATH") or "").split(os.pathsep) if p]


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "codexpc"


def config_file() -> Path:
    explicit = env(ENV_CONFIG)
    return Path(explicit) if explicit else config_dir() / "config.toml"


def runtime_dir() -> Path:
    """The 0700 folder that holds the Unix socket: $XDG_RUNTIME_DIR/codexpc where set."""
    explicit = env(ENV_RUNTIME_DIR)
    if explicit:
        return Path(explicit)
    xdg = env("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "codexpc"
    return Path("/tmp") / f"codexpc-{os.getuid()}"


def socket_path() -> Path:
    return runtime_dir() / "codexpc.sock"


def default_port() -> int:
    raw = env(ENV_PORT)
    if raw is None:
        return DEFAULT_PORT
    try:
        return int(raw)
    except ValueError:
        from codexpc.errors import ConfigError

        raise ConfigError(f"{ENV_PORT}={raw!r} is not a port number") from None
