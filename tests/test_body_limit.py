"""limits.max_body_bytes is the one body limit: a value above 32 MiB lets such bodies through.

On bba8fd2 the limit was defined three times (the config, the middleware's default and a hard
32 MiB cap in server/body.py), so a config raising it had no effect past 32 MiB.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from openai_harmony import HarmonyEncoding

from codexpc.config import load_config
from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.request import RequestLimits
from codexpc.server.runtime import Runtime
from codexpc.server.security import Policy, SecurityMiddleware

MIB = 2**20


def _body(size: int) -> bytes:
    # An unknown model: past the size checks, the route answers 404 without rendering anything.
    head = json.dumps({"model": "no-such-model", "input": "PAD"}).encode()
    return head.replace(b'"PAD"', b'"' + b"x" * (size - len(head)) + b'"')


async def test_a_raised_limit_lets_bodies_above_32_mib_through(tmp_path: Path, encoding: HarmonyEncoding) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f"[limits]\nmax_body_bytes = {48 * MIB}\n")
    limits = load_config(config_file).limits
    # Built as the daemon builds them: the runtime's limits and the listener's policy, both from the config.
    runtime = Runtime(ScriptedEngine(encoding), encoding, limits=RequestLimits.from_config(limits))
    app = SecurityMiddleware(create_app(runtime), Policy("unix", frozenset(), None, limits.max_body_bytes))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        headers = {"content-type": "application/json"}
        within = await client.post("/v1/responses", content=_body(40 * MIB), headers=headers)
        assert within.status_code == 404, within.text[:300]
        assert within.json()["error"]["code"] == "model_not_found"
        beyond = await client.post("/v1/responses", content=_body(49 * MIB), headers=headers)
        assert beyond.status_code == 413 and beyond.json()["error"]["code"] == "request_too_large"
        assert str(48 * MIB) in beyond.json()["error"]["message"]


def test_every_default_is_the_configs_default() -> None:
    from codexpc.config import LimitsConfig
    from codexpc.server.body import MAX_BODY_BYTES

    assert Policy("unix", frozenset()).max_body_bytes == MAX_BODY_BYTES == LimitsConfig().max_body_bytes
