"""The request body as a JSON object, or a 400 that names what is wrong and where.

Every later step (the renderer, openai-harmony's Rust encoder, the tool schemas' compiler)
assumes well-formed text and a sane shape; what they would choke on is refused here:
invalid UTF-8, lone UTF-16 surrogates (valid JSON escapes, but not text that can be encoded),
and nesting deep enough to exhaust a recursive walker.
"""

from __future__ import annotations

import json
from typing import Any

from codexpc.config.schema import LimitsConfig
from codexpc.errors import RequestError

# The config's default (limits.max_body_bytes, the one definition); the daemon passes its value.
MAX_BODY_BYTES = LimitsConfig.max_body_bytes
# Codex's deepest tool schema nests about 10 levels; Python's own recursion limit is 1000.
MAX_DEPTH = 64


def parse_body(raw: bytes, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The JSON object in `raw`; RequestError (400) for anything else."""
    if len(raw) > max_bytes:
        raise RequestError(f"the body is larger than {max_bytes} bytes", code="request_too_large")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise RequestError(f"the body nests deeper than {MAX_DEPTH} levels", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object", code="invalid_json")
    check_text(body)
    return body


def check_text(value: Any) -> None:
    """Refuse lone surrogates (in keys or strings) and nesting beyond MAX_DEPTH, naming the path."""
    # Iterative: the depth bound is what keeps recursive consumers safe, so it must not recurse.
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RequestError(f"{path or 'the body'} nests deeper than {MAX_DEPTH} levels", param=path or None)
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, path or "body")
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))


def _check_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{path} holds a lone UTF-16 surrogate, which is not text", param=path) from None
