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

EngineKind = Literal["torch", "paged", "scripted", "vllm"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("torch", "paged", "scripted", "vllm")


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
    if kind == "scripted":
        return _scripted(model, checkpoint)
    if kind == "vllm":
        from codexpc.engine.vllm import build_vllm_engine

        return build_vllm_engine(model, remote or RemoteEngineConfig())
    if kind in ("torch", "paged"):
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
    )
    if kind == "paged":
        from codexpc.engine.paged.paged_engine import build_paged_engine

        return build_paged_engine(transformer, info, speculative=speculative)
    from codexpc.engine.torch_engine import TorchEngine

    return TorchEngine(transformer, info)


def _scripted(model: str, checkpoint: Path | None) -> Engine:
    from codexpc.engine.scripted import ScriptedEngine
    from codexpc.harmony.encoding import load_encoding

    # The checkpoint, when given, is only a source of the vocabulary here.
    return ScriptedEngine(load_encoding(checkpoint=checkpoint), model=model)
