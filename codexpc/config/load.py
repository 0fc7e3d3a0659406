"""load_config: the file, then the environment, then the CLI's flags, then the checks across them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from codexpc import settings
from codexpc.config.file import from_mapping, read_file
from codexpc.config.overrides import apply_env, apply_overrides
from codexpc.config.schema import DaemonConfig
from codexpc.errors import ConfigError


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """Build the config. `path` None: the default file (settings.config_file()) if it exists."""
    raw, source = read_file(path)
    config = from_mapping(raw, source)
    config = apply_env(config)
    # Lists become tuples so that the frozen config stays hashable.
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items() if v is not None}
    config = apply_overrides(config, given)
    _check(config)
    return replace(config, overrides=tuple(sorted(given.items())), config_given=path is not None)


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


def client_socket(path: Path | None = None) -> tuple[Path, str | None]:
    """The daemon's socket as a client command (health, reload, smoke) finds it, and a warning.

    A client needs only `listen.socket` from the file, so a file with other problems (a typo in
    a model's table) must not stop `codexpc health` from asking a healthy daemon. The warning is
    set only when the file cannot say where the socket is; then the default socket is used.
    """
    default = settings.socket_path()
    try:
        raw, source = read_file(path)
    except ConfigError as exc:
        if path is not None and not Path(path).expanduser().exists():
            raise  # a file the user named and that is not there: say so
        return default, f"{exc}; trying the default socket {default}"
    listen = raw.get("listen", {})
    value = listen.get("socket") if isinstance(listen, Mapping) else None
    if value is None:
        return default, None
    if not isinstance(value, str) or not value.strip():
        return default, f"config file {source}: listen.socket must be a path; trying the default socket {default}"
    return Path(value).expanduser(), None
