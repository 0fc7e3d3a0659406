"""The config file: TOML read into a DaemonConfig, every key checked against the dataclasses.

listen_section and limits_section also read the CLI's flags (see overrides.py): a flag and a key
of the same name are checked by the same code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

from codexpc import settings
from codexpc.config.schema import (
    DEFAULT_MODEL,
    EFFORTS,
    ENGINE_KINDS,
    LOG_LEVELS,
    DaemonConfig,
    Effort,
    EngineKind,
    LimitsConfig,
    ListenConfig,
    ModelEntry,
    RemoteEngineConfig,
    SpeculativeSettings,
)
from codexpc.config.table import Problems, Table
from codexpc.errors import ConfigError


def read_file(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    """The file's tables and where it is; `path` None: the default file, or nothing if absent."""
    explicit = path is not None
    target = Path(path).expanduser() if path is not None else settings.config_file()
    if not target.exists():
        if explicit:
            raise ConfigError(f"config file {target} does not exist")
        return {}, None
    try:
        with target.open("rb") as f:
            return tomllib.load(f), target
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {target}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {target}: {exc.strerror}") from None


def from_mapping(raw: Mapping[str, Any], source: Path | None) -> DaemonConfig:
    """The file's settings over the defaults; every problem in it is reported at once."""
    problems = Problems()
    top_keys = _names(DaemonConfig) - {"config_path", "overrides"}
    top = Table(raw, "", allowed=top_keys, problems=problems, elsewhere=_section_names())
    listen_t = Table(top.table("listen"), "listen.", allowed=_LISTEN_KEYS, problems=problems, elsewhere=top_keys)
    limits_t = Table(top.table("limits"), "limits.", allowed=_names(LimitsConfig), problems=problems)
    models = tuple(m for m in (_model(n, v, problems) for n, v in top.table("models").items()) if m is not None)
    default = top.optional_string("default_model")
    if default is None:
        default = models[0].name if models else DEFAULT_MODEL
    config = DaemonConfig(
        models=models or DaemonConfig.models,
        default_model=default,
        device=top.device("device", "auto"),
        default_reasoning_effort=cast(Effort, top.choice("default_reasoning_effort", EFFORTS, "medium")),
        log_level=top.choice("log_level", LOG_LEVELS, "info"),
        listen=listen_section(listen_t, ListenConfig()),
        limits=limits_section(limits_t, LimitsConfig()),
        vocab=top.path("vocab"),
        capture_dir=top.path("capture_dir"),
        config_path=source,
    )
    problems.raise_if_any(f"config file {source}" if source else "the config")
    return config


def listen_section(t: Table, base: ListenConfig) -> ListenConfig:
    """`base` with what the table (the file's [listen], or the CLI's flags) sets."""
    return ListenConfig(
        hosts=t.hosts("hosts", base.hosts),
        port=t.port("port", base.port),
        socket_path=t.path("socket") or base.socket_path,
        tcp=t.boolean("tcp", base.tcp),
        unix=t.boolean("unix", base.unix),
        token_file=t.path("token_file") or base.token_file,
        allow_non_loopback=t.boolean("allow_non_loopback", base.allow_non_loopback),
    )


def limits_section(t: Table, base: LimitsConfig) -> LimitsConfig:
    return LimitsConfig(**{f.name: t.positive(f.name, getattr(base, f.name)) for f in fields(LimitsConfig)})


def with_colon_alias(name: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    # Ollama-style clients spell gpt-oss-20b as gpt-oss:20b, LM Studio as openai/gpt-oss-20b (the
    # defaults of `codex --oss` in each mode); answer to all three.
    if name.startswith("gpt-oss-"):
        for local in ("gpt-oss:" + name.removeprefix("gpt-oss-"), f"openai/{name}"):
            if local not in aliases:
                aliases = (*aliases, local)
    return aliases


def _model(name: str, value: Any, problems: Problems) -> ModelEntry | None:
    where = f'models."{name}".'
    if not isinstance(value, Mapping):
        problems.add(f'models."{name}" must be a table')
        return None
    allowed = {"engine", "checkpoint", "aliases", "constrained_decoding", "speculative"} | _REMOTE_KEYS
    t = Table(value, where, allowed=allowed, problems=problems)
    aliases = t.strings("aliases")
    engine = cast(EngineKind, t.choice("engine", ENGINE_KINDS, "auto"))
    given = sorted(_REMOTE_KEYS & set(value))
    if given and engine != "vllm":
        raise ConfigError(f"{t.name(given[0])} applies only to engine = \"vllm\"")
    return ModelEntry(
        name=name,
        engine=engine,
        checkpoint=t.path("checkpoint"),
        aliases=with_colon_alias(name, aliases),
        constrained_decoding=t.boolean("constrained_decoding", True),
        remote=_remote(t) if engine == "vllm" else None,
        speculative=_speculative(t.table("speculative"), where + "speculative.", problems),
    )


_REMOTE_KEYS = {f.name for f in fields(RemoteEngineConfig)}


def _remote(t: Table) -> RemoteEngineConfig:
    """The model table's vLLM settings (engine = "vllm")."""
    backends = t.strings("backends")
    for url in backends:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{t.name('backends')}: {url!r} is not an http:// or https:// URL")
    base = RemoteEngineConfig()
    return RemoteEngineConfig(
        backends=tuple(dict.fromkeys(url.rstrip("/") for url in backends)),
        served_model=t.optional_string("served_model"),
        context_length=t.positive("context_length", None),
        connect_timeout_s=t.positive("connect_timeout_s", base.connect_timeout_s),
        read_timeout_s=t.positive("read_timeout_s", base.read_timeout_s),
        retry_initial_s=t.positive("retry_initial_s", base.retry_initial_s),
        retry_max_s=t.positive("retry_max_s", base.retry_max_s),
        api_key_file=t.path("api_key_file"),
    )


def _speculative(raw: Mapping[str, Any], where: str, problems: Problems) -> SpeculativeSettings:
    t = Table(raw, where, allowed=_names(SpeculativeSettings), problems=problems)
    default = SpeculativeSettings()
    return SpeculativeSettings(t.boolean("enabled", default.enabled), t.positive("k", default.k),
                               t.positive("min_match", default.min_match))


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


_LISTEN_KEYS = (_names(ListenConfig) - {"socket_path"}) | {"socket"}


def _section_names() -> set[str]:
    """Every setting of the [listen] and [limits] tables by its full name, for suggestions."""
    return {f"listen.{k}" for k in _LISTEN_KEYS} | {f"limits.{k}" for k in _names(LimitsConfig)}
