"""Where MLX runs: Apple Silicon's GPU (Metal), or the CPU (MLX's CPU build, as in CI on Linux).

MLX is imported only here and by the modules of this package, and only when the mlx engine is
chosen: the other engines and the CLI work without it.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

from codexpc.errors import ConfigError


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def mlx_installed() -> bool:
    return importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx.core") is not None


def require_mlx() -> Any:
    """mlx.core, or a ConfigError that says how to get it."""
    if not mlx_installed():
        raise ConfigError(
            "the mlx engine needs MLX: `pip install mlx` on macOS arm64, `pip install 'mlx[cpu]'` on Linux"
        )
    import mlx.core as mx

    return mx


def mlx_device(device: str) -> tuple[Any, str]:
    """A configured device name -> (mx.Device, the name /health shows).

    "auto" is Metal when this MLX build has it, else the CPU. "mps", "metal" and "gpu" ask for
    Metal; "cpu" for the CPU. CUDA names belong to the paged engine.
    """
    mx = require_mlx()
    metal = bool(mx.metal.is_available())
    if device == "auto":
        return (mx.gpu, "metal") if metal else (mx.cpu, "cpu")
    if device == "cpu":
        return mx.cpu, "cpu"
    if device in ("mps", "metal", "gpu"):
        if not metal:
            raise ConfigError(f"device {device!r} asks for Metal, which this machine's MLX cannot use")
        return mx.gpu, "metal"
    raise ConfigError(f"device {device!r} is not an MLX device (auto, cpu, or mps/metal/gpu)")
