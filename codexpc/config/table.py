"""Typed reads from one TOML table, or from the CLI's flags read as one: every bad value is a
problem that names the setting as the user wrote it (`listen.port`, `--max-output-tokens`).

A bad value does not stop the reading: it is recorded in the shared `Problems` and the read
returns the default, so that one pass over a file reports every problem in it at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from codexpc.errors import ConfigError

T = TypeVar("T")
# What a device setting may name: torch's CPU or one CUDA device. Apple's GPU is not a torch
# device here: Macs get the MLX engine instead.
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_port(value: int, name: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={value} is not a port number (0..65535)")
    return value


def device_problem(value: str, name: str) -> str | None:
    """Why `value` is not a device setting, or None. Only the name is checked: whether this
    machine has the device is the engine's question (codexpc.engine.factory.resolve_device)."""
    if _DEVICE.match(value):
        return None
    if value.split(":")[0] == "mps":
        return (f"{name} {value!r}: Apple's GPU is not served by the torch engines (cpu or cuda); "
                'on a Mac use engine = "mlx" for the GPU, or device = "auto"')
    return f"{name} {value!r} is not a device (auto, cpu, cuda or cuda:N)"


class Problems:
    """Every bad setting found while reading one source, reported together at the end."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, where: str) -> None:
        """One ConfigError listing them all; `where` says which source ("config file X")."""
        if not self.items:
            return
        if len(self.items) == 1:
            raise ConfigError(f"{where}: {self.items[0]}")
        listed = "\n".join(f"  - {item}" for item in self.items)
        raise ConfigError(f"{where} has {len(self.items)} problems:\n{listed}")


def nearest(key: str, candidates: Iterable[str]) -> str | None:
    """The valid name a misspelt `key` most likely meant, if any is close."""
    names = {c.rsplit(".", 1)[-1].strip('"'): c for c in candidates}
    match = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return names[match[0]] if match else None


class Table:
    """One table's settings; every key outside `allowed` is a problem, with the nearest valid name.

    `elsewhere`: full names of settings in other tables (`listen.port`), suggested for a key
    that belongs there (`port` at the top of the file).
    """

    def __init__(self, raw: Mapping[str, Any], prefix: str, allowed: set[str] | frozenset[str],
                 problems: Problems, elsewhere: Iterable[str] = ()) -> None:
        self.raw = raw
        self.prefix = prefix  # "listen.", 'models."x".', or "--" for the CLI's flags
        self.problems = problems
        for key in sorted(set(raw) - set(allowed)):
            guess = nearest(key, [self.name(a) for a in allowed]) or nearest(key, elsewhere)
            hint = f" (did you mean {guess}?)" if guess else ""
            problems.add(f"unknown setting {self.name(key)}{hint}")

    def name(self, key: str) -> str:
        """The setting as the user wrote it: `listen.port`, or the flag `--max-output-tokens`."""
        return f"--{key.replace('_', '-')}" if self.prefix == "--" else self.prefix + key

    def _bad(self, message: str, fallback: T) -> T:
        self.problems.add(message)
        return fallback

    def _get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.raw.get(key)
        # bool is an int in Python; a port of `true` is a mistake, not 1.
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            return self._bad(f"{self.name(key)} must be {what}, not {value!r}", None)
        return value

    def table(self, key: str) -> Mapping[str, Any]:
        return self._get(key, dict, "a table") or {}

    def optional_string(self, key: str) -> str | None:
        value = self._get(key, str, "a string")
        if value is not None and not value.strip():
            return self._bad(f"{self.name(key)} must not be empty", None)
        return cast(str | None, value)

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings") or []
        if not all(isinstance(v, str) and v for v in value):
            return self._bad(f"{self.name(key)} must be a list of strings", ())
        return tuple(value)

    def choice(self, key: str, options: tuple[str, ...], default: Any) -> Any:
        value = self.optional_string(key)
        if value is None:
            return default
        if value not in options:
            return self._bad(f"{self.name(key)} must be one of {', '.join(options)}, not {value!r}", default)
        return value

    def device(self, key: str, default: str) -> str:
        value = self.string(key, default)
        problem = device_problem(value, self.name(key))
        return value if problem is None else self._bad(problem, default)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def positive(self, key: str, default: Any) -> Any:
        kind = float if isinstance(default, float) else int
        value = self._get(key, (int, float) if kind is float else int, f"a positive {kind.__name__}")
        if value is None:
            return default
        if value <= 0:
            return self._bad(f"{self.name(key)} must be positive, not {value!r}", default)
        return kind(value)

    def port(self, key: str, default: int) -> int:
        value = self._get(key, int, "a port number")
        if value is None:
            return default
        try:
            return check_port(value, self.name(key))
        except ConfigError as exc:
            return self._bad(str(exc), default)

    def path(self, key: str) -> Path | None:
        value = self._get(key, (str, Path), "a path")
        if value is None:
            return None
        if not str(value).strip():
            return self._bad(f"{self.name(key)} must not be empty", None)
        return Path(value).expanduser()

    def hosts(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items or not all(isinstance(h, str) for h in items):
            return self._bad(f"{self.name(key)} must be an address or a list of addresses", default)
        # Sockets bind addresses, not names: "localhost" could resolve anywhere.
        resolved = ["127.0.0.1" if h == "localhost" else h for h in items]
        for host in resolved:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return self._bad(f"{self.name(key)}: {host!r} is not an IP address", default)
        return tuple(dict.fromkeys(resolved))
