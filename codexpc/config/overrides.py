"""The environment and the CLI's flags, applied over the file (a flag beats a variable).

The CLI's overrides are flat keys; None means "not given" and is ignored. They are read as one
more Table (prefix "--"), so a bad flag is named as the user typed it.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

from codexpc import settings
from codexpc.config.file import limits_section, listen_section, with_colon_alias
from codexpc.config.schema import (
    EFFORTS,
    ENGINE_KINDS,
    LOG_LEVELS,
    DaemonConfig,
    Effort,
    EngineKind,
    LimitsConfig,
    ModelEntry,
)
from codexpc.config.table import Problems, Table, check_port, device_problem
from codexpc.errors import ConfigError

OVERRIDE_KEYS: frozenset[str] = frozenset(
    {
        "model",  # the default model's name (or alias)
        "checkpoint",  # checkpoint of the default model
        "engine",  # engine kind of the default model
        "device",
        "port",
        "hosts",  # a tuple/list of addresses, or one string
        "socket",
        "tcp",
        "unix",
        "token_file",
        "allow_non_loopback",
        "effort",
        "log_level",
        "capture_dir",
        "vocab",
    }
    | {f.name for f in fields(LimitsConfig)}  # every limit, e.g. max_output_tokens, queue_size
)


def apply_env(config: DaemonConfig) -> DaemonConfig:
    """The CODEXPC_* variables (read in codexpc.settings) over `config`: a variable beats the file."""
    device = settings.env(settings.ENV_DEVICE)
    if device is not None:
        problem = device_problem(device, settings.ENV_DEVICE)
        if problem is not None:
            raise ConfigError(problem)
        config = replace(config, device=device)
    vocab = settings.env(settings.ENV_VOCAB)
    if vocab is not None:
        config = replace(config, vocab=Path(vocab).expanduser())
    if settings.env(settings.ENV_PORT) is not None:
        port = check_port(settings.default_port(), settings.ENV_PORT)
        config = replace(config, listen=replace(config.listen, port=port))
    return config


def apply_overrides(config: DaemonConfig, overrides: dict[str, Any]) -> DaemonConfig:
    given = {k: v for k, v in overrides.items() if v is not None}
    problems = Problems()
    t = Table(given, "--", allowed=OVERRIDE_KEYS, problems=problems)
    config = _override_model(config, t)
    config = replace(
        config,
        device=t.device("device", config.device),
        default_reasoning_effort=cast(Effort, t.choice("effort", EFFORTS, config.default_reasoning_effort)),
        log_level=t.choice("log_level", LOG_LEVELS, config.log_level),
        capture_dir=t.path("capture_dir") or config.capture_dir,
        vocab=t.path("vocab") or config.vocab,
        listen=listen_section(t, config.listen),
        limits=limits_section(t, config.limits),
    )
    problems.raise_if_any("the command line")
    return config


def _override_model(config: DaemonConfig, t: Table) -> DaemonConfig:
    """--model picks (or adds) the default model; --checkpoint/--engine apply to it."""
    name = t.optional_string("model")
    if name is not None:
        entry = config.find_model(name)
        if entry is None:
            entry = ModelEntry(name, aliases=with_colon_alias(name, ()))
            config = replace(config, models=(*config.models, entry))
        config = replace(config, default_model=entry.name)
    checkpoint = t.path("checkpoint")
    engine = t.choice("engine", ENGINE_KINDS, None)
    if checkpoint is None and engine is None:
        return config
    current = config.find_model(config.default_model) or ModelEntry(config.default_model)
    updated = replace(
        current,
        checkpoint=checkpoint or current.checkpoint,
        engine=cast(EngineKind, engine or current.engine),
    )
    others = tuple(m for m in config.models if m.name != current.name)
    return replace(config, models=(updated, *others))
