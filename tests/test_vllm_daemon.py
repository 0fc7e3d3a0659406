"""End to end: a real daemon (subprocess, engine = "vllm") in front of a stand-in vLLM server on a
real loopback socket. Its answer equals the local paged engine's for the same request, /health and
/metrics show the back end, and when the back end dies the daemon answers a clean failure and
stays up."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import serve_in_thread
from openai_harmony import HarmonyEncoding
from vllm_standin import create_standin, events_of

from codexpc.engine.api import Engine, SamplingParams
from codexpc.engine.factory import create_engine
from codexpc.server.app import create_app
from codexpc.server.runtime import Runtime

# The real daemon with the real engine factory; only the log goes to stderr, for the test to read.
LAUNCHER = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
from codexpc.config import load_config
from codexpc.server.daemon import serve
sys.exit(serve(load_config(Path(sys.argv[1]))))
"""
BODY = {"input": "Say hello.", "temperature": 0, "max_output_tokens": 12, "stream": False}


@pytest.fixture(scope="module")
def paged(tiny_checkpoint: Path) -> Iterator[Engine]:
    engine = create_engine("paged", model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    yield engine
    asyncio.run(engine.close())


class VllmDaemon:
    def __init__(self, backend_url: str, *more_backends: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cxv-"))  # short: socket paths are limited
        self.log_path = self.folder / "daemon.log"
        config = self.folder / "config.toml"
        config.write_text(
            f'default_model = "gpt-oss-120b"\n[listen]\nport = 0\nhosts = ["127.0.0.1"]\n'
            f'socket = "{self.folder / "run" / "codexpc.sock"}"\n'
            f'[models."gpt-oss-120b"]\nengine = "vllm"\nbackends = {json.dumps([backend_url, *more_backends])}\n'
            f"retry_initial_s = 0.2\nread_timeout_s = 10\n")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if " ready model=" in text and found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise AssertionError("the daemon did not become ready")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            shutil.rmtree(self.folder, ignore_errors=True)


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    """What the model said and why it stopped, without ids, times and the model's name."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("id", "created_at", "model")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    usage = response["usage"]
    return {k: strip(response.get(k)) for k in ("status", "output", "error", "incomplete_details")} | {
        "input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}


async def local_ids(paged: Engine, body: dict[str, Any]) -> list[int]:
    """The local engine's tokens for the prompt and sampling the daemon sent to the back end."""
    sampling = body["sampling_params"]
    params = SamplingParams(temperature=sampling["temperature"], top_p=sampling["top_p"],
                            max_new_tokens=sampling["max_tokens"], stop_token_ids=frozenset(sampling["stop_token_ids"]))
    generation = paged.submit(body["token_ids"], params, "local-ids")
    return [e.token_id async for e in events_of(generation) if e.token_id is not None]


async def local_answer(paged: Engine, encoding: HarmonyEncoding) -> dict[str, Any]:
    app = create_app(Runtime(paged, encoding))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        answer = await http.post("/v1/responses", json={**BODY, "model": "tiny"})
        result: dict[str, Any] = answer.json()
        return result


@pytest.mark.slow
def test_daemon_with_engine_vllm_serves_the_local_engines_answer_and_survives_the_backend(
        paged: Engine, encoding: HarmonyEncoding) -> None:
    app, _faults, record = create_standin(paged, max_model_len=8192)
    with serve_in_thread(app) as url:
        daemon = VllmDaemon(url)
        try:
            with daemon.client() as http:
                remote = http.post("/v1/responses", json={**BODY, "model": "gpt-oss-120b"}).json()
                local = asyncio.run(local_answer(paged, encoding))
                assert comparable(remote) == comparable(local)
                route, sent = record.requests[-1]
                assert route == "generate" and record.streamed[sent["request_id"]] == asyncio.run(local_ids(paged, sent))

                with http.stream("POST", "/v1/responses", json={**BODY, "model": "gpt-oss-120b", "stream": True}) as s:
                    kinds = [json.loads(line[6:])["type"] for line in s.iter_lines() if line.startswith("data: {")]
                assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete")

                health = http.get("/health").json()
                assert health["engine"]["kind"] == "vllm" and health["engine"]["context_length"] == 8192
                backend = health["engine"]["stats"]["backends"][0]
                assert backend["url"] == url and backend["state"] == "up" and backend["requests"] == 2
                assert f'codexpc_engine_backend_up{{backend="{url}"}} 1' in http.get("/metrics").text
        except BaseException:
            daemon.stop()
            raise
    # The stand-in is gone: a clean failure, and the daemon stays up.
    try:
        with daemon.client() as http:
            failed = http.post("/v1/responses", json={**BODY, "model": "gpt-oss-120b"}).json()
            assert failed["status"] == "failed" and failed["error"]["message"]
            health = http.get("/health")
            assert health.status_code == 200
            assert health.json()["engine"]["stats"]["backends"][0]["state"] == "down"
    finally:
        daemon.stop()


@pytest.mark.slow
def test_one_conversation_stays_on_one_backend_by_its_prompt_cache_key(paged: Engine) -> None:
    """Codex's prompt_cache_key reaches the vLLM engine as the routing key: every turn of one
    conversation goes to the back end that holds its prefix; other conversations spread."""
    first, _f1, record1 = create_standin(paged, max_model_len=8192)
    second, _f2, record2 = create_standin(paged, max_model_len=8192)
    with serve_in_thread(first) as url1, serve_in_thread(second) as url2:
        daemon = VllmDaemon(url1, url2)
        try:
            with daemon.client() as http:
                for conversation in ("conv-a", "conv-b", "conv-c", "conv-d", "conv-e", "conv-f"):
                    before = (len(record1.requests), len(record2.requests))
                    for _turn in range(3):
                        reply = http.post("/v1/responses", json={**BODY, "model": "gpt-oss-120b",
                                                                 "prompt_cache_key": conversation})
                        assert reply.status_code == 200, reply.text
                    grew = (len(record1.requests) - before[0], len(record2.requests) - before[1])
                    assert sorted(grew) == [0, 3], (conversation, grew)  # all three turns on one back end
            assert record1.requests and record2.requests  # six conversations used both
        finally:
            daemon.stop()
