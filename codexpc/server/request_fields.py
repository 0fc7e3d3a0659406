"""Typed readers of one field of a request body: each gives the value or its default, or raises a
RequestError (400) that names the parameter. `null` is "not given", as in OpenAI's API (its SDKs
send it for unset options)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from codexpc.errors import RequestError


def optional(body: Mapping[str, Any], key: str, kind: type, what: str, param: str | None = None) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise RequestError(f"{param or key} must be {what}", param=param or key)
    return value


def flag(body: Mapping[str, Any], key: str, default: bool, param: str | None = None) -> bool:
    value = optional(body, key, bool, "a boolean", param)
    return default if value is None else bool(value)


def number(body: Mapping[str, Any], key: str, low: float, high: float, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{key} must be a number", param=key)
    if not low <= value <= high:
        raise RequestError(f"{key} must be between {low} and {high}", param=key)
    return float(value)


def count(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{key} must be a positive integer", param=key)
    return value
