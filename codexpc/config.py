"""The daemon's configuration: frozen dataclasses built once from a TOML file, the environment
and the command line, in that order of precedence (a CLI flag beats the environment, which
beats the file, which beats the defaults).

A config file looks like this (every key is optional):

    default_model = "gpt-oss-20b"
    device = "auto"                      # "auto", "cpu", "cuda", "cuda:1", "mps"
    default_reasoning_effort = "medium"  # "low" | "medium" | "high"
    log_level = "info"

    [listen]
    hosts = ["127.0.0.1", "::1"]         # loopback only unless allow_non_loopback = true
    port = 8787                          # 0 picks a free port (logged at startup)
    socket = "/run/user/1000/codexpc/codexpc.sock"
    tcp = true
    unix = true
    token_file = "~/.config/codexpc/token"   # mode 0600; required off loopback
    allow_non_loopback = false

    [limits]
    max_body_bytes = 33554432
    max_output_tokens = 32768

    [models."gpt-oss-20b"]
    checkpoint = "~/models/gpt-oss-20b"
    engine = "paged"                     # "paged" (batching, prefix cache) | "torch" (plain) | "scripted"
    aliases = ["gpt-oss:20b"]            # gpt-oss-NAME always answers to gpt-oss:NAME too

Bad values raise ConfigError naming the setting (`listen.port`, `models."x".engine`, ...).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

from codexpc import settings
from codexpc.errors import ConfigError

EngineKind = Literal["torch", "paged", "scripted"]
Effort = Literal["low", "medium", "high"]
ENGINE_KINDS: tuple[str, ...] = ("torch", "paged", "scripted")
EFFORTS: tuple[str, ...] = ("low", "medium", "high")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
DEFAULT_MODEL = "gpt-oss-20b"
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class ModelEntry:
    """One servable model: the name clients send, where its weights are, which engine runs it."""

    name: str
    engine: EngineKind = "paged"  # continuous batching and cross-turn prefix reuse
    checkpoint: Path | None = None  # a folder or file; the scripted engine needs none
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a request may use for this model, canonical name first."""
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class ListenConfig:
    hosts: tuple[str, ...] = LOOPBACK_HOSTS
    port: int = settings.DEFAULT_PORT  # 0: the OS picks one
    socket_path: Path = field(default_factory=settings.socket_path)
    tcp: bool = True
    unix: bool = True
    token_file: Path | None = None
    allow_non_loopback: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on what one request may ask for; a request beyond them gets a 4xx naming the field."""

    max_body_bytes: int = 32 * 1024 * 1024  # Codex re-sends the whole conversation each turn
    max_output_tokens: int = 32768  # the cap on a request's max_output_tokens
    default_max_output_tokens: int = 8192  # used when a request does not say
    max_input_items: int = 4096
    max_tools: int = 256
    max_tool_schema_bytes: int = 256 * 1024  # one tool's JSON schema, serialized
    queue_size: int = 64  # waiting requests beyond the running ones; then 429
    max_in_flight: int = 128  # requests admitted at once, running or waiting; then 429
    shutdown_timeout_s: float = 10.0  # SIGTERM: streams still running after this are ended


@dataclass(frozen=True)
class DaemonConfig:
    models: tuple[ModelEntry, ...] = (ModelEntry(DEFAULT_MODEL, aliases=("gpt-oss:20b",)),)
    default_model: str = DEFAULT_MODEL
    device: str = "auto"
    default_reasoning_effort: Effort = "medium"
    log_level: str = "info"
    listen: ListenConfig = field(default_factory=ListenConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    vocab: Path | None = None  # o200k_base.tiktoken or its folder (see codexpc.vocab)
    capture_dir: Path | None = None  # debugging: each POST body is written here as JSON
    config_path: Path | None = None  # the file this came from, for reload and messages
    # The CLI overrides this was built with, so that a reload (SIGHUP) re-reads the file and
    # applies them again: load_config(config.config_path, dict(config.overrides)).
    overrides: tuple[tuple[str, Any], ...] = ()

    def find_model(self, name: str) -> ModelEntry | None:
        """The model a request names (canonical name or alias), or None."""
        for entry in self.models:
            if name in entry.names:
                return entry
        return None

    @property
    def model(self) -> ModelEntry:
        """The default model; it exists (load_config checks)."""
        entry = self.find_model(self.default_model)
        assert entry is not None, "load_config guarantees the default model exists"
        return entry

    def require_servable(self) -> ModelEntry:
        """The default model, checked for what serving it needs (a checkpoint for real engines)."""
        entry = self.model
        if entry.engine != "scripted" and entry.checkpoint is None:
            raise ConfigError(
                f'models."{entry.name}".checkpoint is not set: pass --checkpoint PATH or set it in '
                f"{self.config_path or settings.config_file()}"
            )
        return entry


# ---------------------------------------------------------------------------------------------
# Overrides: flat keys, as the CLI has them. None means "not given" and is ignored.
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


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """Build the config. `path` None: the default file (settings.config_file()) if it exists."""
    raw, source = _read_file(path)
    config = _from_mapping(raw, source)
    config = _apply_env(config)
    # Lists become tuples so that the frozen config stays hashable.
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items() if v is not None}
    config = _apply_overrides(config, given)
    _check(config)
    return replace(config, overrides=tuple(sorted(given.items())))


def _read_file(path: Path | None) -> tuple[dict[str, Any], Path | None]:
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


def _from_mapping(raw: Mapping[str, Any], source: Path | None) -> DaemonConfig:
    top = _Table(raw, "", allowed={f.name for f in fields(DaemonConfig)} - {"config_path", "overrides"})
    listen_t = _Table(
        top.table("listen"), "listen.", allowed=(_names(ListenConfig) - {"socket_path"}) | {"socket"}
    )
    limits_t = _Table(top.table("limits"), "limits.", allowed=_names(LimitsConfig))
    models = tuple(_model(name, value) for name, value in top.table("models").items())
    default = top.optional_string("default_model")
    if default is None:
        default = models[0].name if models else DEFAULT_MODEL
    return DaemonConfig(
        models=models or DaemonConfig.models,
        default_model=default,
        device=top.string("device", "auto"),
        default_reasoning_effort=cast(Effort, top.choice("default_reasoning_effort", EFFORTS, "medium")),
        log_level=top.choice("log_level", LOG_LEVELS, "info"),
        listen=_listen(listen_t, ListenConfig()),
        limits=_limits(limits_t, LimitsConfig()),
        vocab=top.path("vocab"),
        capture_dir=top.path("capture_dir"),
        config_path=source,
    )


def _listen(t: _Table, base: ListenConfig) -> ListenConfig:
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


def _limits(t: _Table, base: LimitsConfig) -> LimitsConfig:
    return LimitsConfig(**{f.name: t.positive(f.name, getattr(base, f.name)) for f in fields(LimitsConfig)})


def _model(name: str, value: Any) -> ModelEntry:
    where = f'models."{name}".'
    if not isinstance(value, Mapping):
        raise ConfigError(f'models."{name}" must be a table')
    t = _Table(value, where, allowed={"engine", "checkpoint", "aliases"})
    aliases = t.strings("aliases")
    return ModelEntry(
        name=name,
        engine=cast(EngineKind, t.choice("engine", ENGINE_KINDS, "paged")),
        checkpoint=t.path("checkpoint"),
        aliases=_with_colon_alias(name, aliases),
    )


def _with_colon_alias(name: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    # Ollama-style clients spell gpt-oss-20b as gpt-oss:20b; answer to both.
    if name.startswith("gpt-oss-"):
        colon = "gpt-oss:" + name.removeprefix("gpt-oss-")
        if colon not in aliases:
            return (*aliases, colon)
    return aliases


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


# ---------------------------------------------------------------------------------------------
# The environment and the CLI, applied over the file.


def _apply_env(config: DaemonConfig) -> DaemonConfig:
    device = settings.env(settings.ENV_DEVICE)
    if device is not None:
        config = replace(config, device=device)
    if settings.env(settings.ENV_PORT) is not None:
        port = _check_port(settings.default_port(), settings.ENV_PORT)
        config = replace(config, listen=replace(config.listen, port=port))
    return config


def _apply_overrides(config: DaemonConfig, overrides: dict[str, Any]) -> DaemonConfig:
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - OVERRIDE_KEYS
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    t = _Table(given, "--", allowed=OVERRIDE_KEYS)
    config = _override_model(config, t)
    return replace(
        config,
        device=t.string("device", config.device),
        default_reasoning_effort=cast(Effort, t.choice("effort", EFFORTS, config.default_reasoning_effort)),
        log_level=t.choice("log_level", LOG_LEVELS, config.log_level),
        capture_dir=t.path("capture_dir") or config.capture_dir,
        vocab=t.path("vocab") or config.vocab,
        listen=_listen(t, config.listen),
        limits=_limits(t, config.limits),
    )


def _override_model(config: DaemonConfig, t: _Table) -> DaemonConfig:
    """--model picks (or adds) the default model; --checkpoint/--engine apply to it."""
    name = t.optional_string("model")
    if name is not None:
        entry = config.find_model(name)
        if entry is None:
            entry = ModelEntry(name, aliases=_with_colon_alias(name, ()))
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


def _check(config: DaemonConfig) -> None:
    """Checks across settings, after every source was applied."""
    if config.find_model(config.default_model) is None:
        known = ", ".join(m.name for m in config.models)
        raise ConfigError(f"default_model {config.default_model!r} is not configured (known: {known})")
    seen: dict[str, str] = {}
    for entry in config.models:
        for name in entry.names:
            if name in seen and seen[name] != entry.name:
                raise ConfigError(f'models."{entry.name}": name {name!r} is also used by {seen[name]!r}')
            seen[name] = entry.name
    listen = config.listen
    if not (listen.tcp or listen.unix):
        raise ConfigError("listen.tcp and listen.unix are both off: the daemon would be unreachable")
    remote = [h for h in listen.hosts if not _is_loopback(h)]
    if listen.tcp and remote:
        if not listen.allow_non_loopback:
            raise ConfigError(
                f"listen.hosts: {', '.join(remote)} is not loopback; "
                "set listen.allow_non_loopback = true (and a token_file) to serve it"
            )
        if listen.token_file is None:
            raise ConfigError("listen.token_file is required when listening off loopback")
    if config.limits.default_max_output_tokens > config.limits.max_output_tokens:
        raise ConfigError("limits.default_max_output_tokens exceeds limits.max_output_tokens")


def _is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def _check_port(value: int, name: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={value} is not a port number (0..65535)")
    return value


class _Table:
    """Typed reads from one TOML table (or the overrides), naming the setting in every error."""

    def __init__(self, raw: Mapping[str, Any], prefix: str, allowed: set[str] | frozenset[str]) -> None:
        self.raw = raw
        self.prefix = prefix
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown setting {self.name(unknown[0])}")

    def name(self, key: str) -> str:
        """The setting as the user wrote it: `listen.port`, or the flag `--max-output-tokens`."""
        return f"--{key.replace('_', '-')}" if self.prefix == "--" else self.prefix + key

    def _get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.raw.get(key)
        # bool is an int in Python; a port of `true` is a mistake, not 1.
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ConfigError(f"{self.name(key)} must be {what}, not {value!r}")
        return value

    def table(self, key: str) -> Mapping[str, Any]:
        return self._get(key, dict, "a table") or {}

    def optional_string(self, key: str) -> str | None:
        value = self._get(key, str, "a string")
        if value is not None and not value.strip():
            raise ConfigError(f"{self.name(key)} must not be empty")
        return cast(str | None, value)

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings") or []
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.name(key)} must be a list of strings")
        return tuple(value)

    def choice(self, key: str, options: tuple[str, ...], default: Any) -> Any:
        value = self.optional_string(key)
        if value is None:
            return default
        if value not in options:
            raise ConfigError(f"{self.name(key)} must be one of {', '.join(options)}, not {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def positive(self, key: str, default: Any) -> Any:
        kind = float if isinstance(default, float) else int
        value = self._get(key, (int, float) if kind is float else int, f"a positive {kind.__name__}")
        if value is None:
            return default
        if value <= 0:
            raise ConfigError(f"{self.name(key)} must be positive, not {value!r}")
        return kind(value)

    def port(self, key: str, default: int) -> int:
        value = self._get(key, int, "a port number")
        return default if value is None else _check_port(value, self.name(key))

    def path(self, key: str) -> Path | None:
        value = self._get(key, (str, Path), "a path")
        if value is None:
            return None
        if not str(value).strip():
            raise ConfigError(f"{self.name(key)} must not be empty")
        return Path(value).expanduser()

    def hosts(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items or not all(isinstance(h, str) for h in items):
            raise ConfigError(f"{self.name(key)} must be an address or a list of addresses")
        # Sockets bind addresses, not names: "localhost" could resolve anywhere.
        resolved = ["127.0.0.1" if h == "localhost" else h for h in items]
        for host in resolved:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ConfigError(f"{self.name(key)}: {host!r} is not an IP address") from None
        return tuple(dict.fromkeys(resolved))
