"""Typed reads from one TOML table, or from the CLI's flags read as one: every bad value raises a
ConfigError that names the setting as the user wrote it (`listen.port`, `--max-output-tokens`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from codexpc.errors import ConfigError


def check_port(value: int, name: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={value} is not a port number (0..65535)")
    return value


class Table:
    """One table's settings; a key outside `allowed` is an error at once."""

    def __init__(self, raw: Mapping[str, Any], prefix: str, allowed: set[str] | frozenset[str]) -> None:
        self.raw = raw
        self.prefix = prefix  # "listen.", 'models."x".', or "--" for the CLI's flags
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
        return default if value is None else check_port(value, self.name(key))

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
