"""create_engine: the one place that turns a configured engine kind into a running Engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch

from codexpc.config.schema import RemoteEngineConfig
from codexpc.engine.api import Engine, EngineInfo
from codexpc.engine.speculative.config import SpeculativeConfig
from codexpc.errors import ConfigError

log = logging.getLogger(__name__)

EngineKind = Literal["auto", "paged", "mlx", "scripted", "vllm"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("auto", "paged", "mlx", "scripted", "vllm")
# The plain one-sequence engine is retired: the paged engine on its reference path computes the
# same tokens on a CPU (tests/test_engine_serving.py), and is the one engine to keep fast. A config
# that still names it keeps working, with a warning, rather than failing after an upgrade.
RETIRED_KINDS = {"torch": "paged"}


def resolve_kind(kind: str) -> str:
    """"auto" is the MLX engine on Apple Silicon (when MLX is installed), the paged engine elsewhere."""
    if kind != "auto":
        return kind
    from codexpc.engine.mlx.platform import is_apple_silicon, mlx_installed

    return "mlx" if is_apple_silicon() and mlx_installed() else "paged"


def resolve_device(device: str) -> torch.device:
    """"auto" is CUDA when available, else the CPU; anything else must name a usable device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r} is not a device name (try auto, cpu, cuda, cuda:1)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asks for CUDA, which this machine's torch cannot use")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported (cpu or cuda)")
    return resolved


def create_engine(kind: str, *, model: str, checkpoint: Path | None, device: str = "auto",
                  remote: RemoteEngineConfig | None = None, speculative: SpeculativeConfig | None = None) -> Engine:
    """`remote`: the vLLM servers of engine "vllm" (the model entry's settings); others ignore it.
    `speculative` applies to the paged engine only (the others ignore it)."""
    if kind in RETIRED_KINDS:
        log.warning('engine "%s" is retired and serves as "%s" (the same tokens); set engine = "%s" for %s',
                    kind, RETIRED_KINDS[kind], RETIRED_KINDS[kind], model)
        kind = RETIRED_KINDS[kind]
    kind = resolve_kind(kind)
    if kind == "mlx":
        return _mlx(model, _need_checkpoint(kind, checkpoint), device)
    if kind == "scripted":
        return _scripted(model, checkpoint)
    if kind == "vllm":
        from codexpc.engine.vllm import build_vllm_engine

        return build_vllm_engine(model, remote or RemoteEngineConfig())
    if kind == "paged":
        return _load(kind, model, _need_checkpoint(kind, checkpoint), resolve_device(device), speculative)
    raise ConfigError(f"unknown engine kind {kind!r} (one of {', '.join(ENGINE_KINDS)})")


def _need_checkpoint(kind: str, checkpoint: Path | None) -> Path:
    if checkpoint is None:
        raise ConfigError(f"engine {kind!r} needs a checkpoint path")
    return checkpoint


def _load(kind: str, model: str, checkpoint: Path, device: torch.device,
          speculative: SpeculativeConfig | None = None) -> Engine:
    # Imported here so that the scripted engine works without the checkpoint package's readers.
    from codexpc.checkpoint import open_checkpoint
    from codexpc.engine.weights import load_model

    ckpt = open_checkpoint(checkpoint)
    log.info("loading %s from %s (%s layout) onto %s for the %s engine", model, checkpoint, ckpt.layout, device, kind)
    transformer = load_model(ckpt, device)
    info = EngineInfo(
        kind=kind,
        model=model,
        checkpoint=str(checkpoint),
        device=str(device),
        context_length=ckpt.config.context_length,
        mask_vocab_size=ckpt.config.vocab_size,  # the paged engine masks its logits (constrain/)
    )
    from codexpc.engine.paged.paged_engine import build_paged_engine

    return build_paged_engine(transformer, info, speculative=speculative)


def _mlx(model: str, checkpoint: Path, device: str) -> Engine:
    # Imported here: MLX is installed on macOS arm64 (and as its CPU build on Linux CI) only.
    from codexpc.engine.mlx.platform import require_mlx

    require_mlx()
    from codexpc.engine.mlx.engine import MLXEngine

    log.info("loading %s from %s onto MLX (device %s) for the mlx engine", model, checkpoint, device)
    return MLXEngine(checkpoint, model, device)


def _scripted(model: str, checkpoint: Path | None) -> Engine:
    from codexpc.engine.scripted import ScriptedEngine
    from codexpc.harmony.encoding import load_encoding

    # The checkpoint, when given, is only a source of the vocabulary here.
    return ScriptedEngine(load_encoding(checkpoint=checkpoint), model=model)
