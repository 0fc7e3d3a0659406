#!/usr/bin/env python
"""Soak test: a real daemon on loopback, many concurrent streaming clients, random cancellations.

    python scripts/soak.py --minutes 10                      # the tiny checkpoint on the CPU
    python scripts/soak.py --seconds 15 --engine scripted    # the short form CI runs

It starts `serve()` in a subprocess (its own socket folder, loopback TCP on a free port), runs
CLIENTS workers that each send streaming Responses requests back to back, abandoning a share of
them at a random moment, samples the daemon's RSS and open file descriptors every second, then
stops it with SIGTERM. Expected outcomes: completed and incomplete responses, cancellations, 429s
beyond limits.max_in_flight, and (random weights only) responses failed as invalid_model_output.
Anything else, and any error line in the daemon's log, is unexpected. Time to first token comes
from the daemon's own log line per request ("first token ... ms="). Exit status 0 when nothing
unexpected happened and memory and file descriptors stayed stable. Linux only (reads /proc).

Use the torch or paged engine for runs of minutes: the scripted engine keeps every prompt it was
given (for tests to inspect), so its RSS grows by a few KB per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

LAUNCHER = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
from codexpc.config import load_config
from codexpc.server.daemon import serve

delay = float(sys.argv[2])

def engine_factory(kind, *, model, checkpoint, device="auto"):
    from codexpc.engine.factory import create_engine
    if kind == "scripted":  # with a per-token delay, so that streams overlap and can be cut
        from codexpc.engine.scripted import ScriptedEngine
        from codexpc.harmony.encoding import load_encoding
        return ScriptedEngine(load_encoding(), model=model, delay_s=delay)
    return create_engine(kind, model=model, checkpoint=checkpoint, device=device)

sys.exit(serve(load_config(Path(sys.argv[1])), engine_factory=engine_factory))
"""

PROMPTS = ["hi", "What is 2 + 2?", "Summarize the README in one line.", "List three prime numbers."]
SHELL_TOOL = {"type": "function", "name": "exec_command", "description": "Run a command",
              "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}
WARMUP_SHARE = 0.2  # RSS and fds are compared from the end of the warm-up on
RSS_GROWTH_LIMIT = 32 * 1024 * 1024  # bytes; allocator pools settle within the warm-up
FD_SLACK = 2  # a log rotation or a late-closing socket


@dataclass
class Tally:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    client_ttft_s: list[float] = field(default_factory=list)  # to the first output event (text engines)


@dataclass
class Sample:
    at_s: float
    rss_bytes: int
    fds: int


# ---------------------------------------------------------------------------------------------
# The daemon.


def write_config(folder: Path, engine: str, checkpoint: Path | None, max_in_flight: int) -> Path:
    model = "gpt-oss-20b" if engine == "scripted" else "tiny"
    lines = [f'default_model = "{model}"', 'device = "cpu"', "",
             "[listen]", "port = 0", f'socket = "{folder / "run" / "codexpc.sock"}"', 'hosts = ["127.0.0.1"]', "",
             "[limits]", f"max_in_flight = {max_in_flight}", "max_output_tokens = 256", "default_max_output_tokens = 64", "",
             f'[models."{model}"]', f'engine = "{engine}"']
    if checkpoint is not None:
        lines.append(f'checkpoint = "{checkpoint}"')
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_daemon(config: Path, log_path: Path, delay_s: float) -> tuple[subprocess.Popen[bytes], int]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(config), str(delay_s)], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if " ready model=" in text and found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}:\n{text}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the daemon did not become ready in 120 s")


def sample(pid: int, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return Sample(round(time.monotonic() - started, 1), rss_kib * 1024, len(os.listdir(f"/proc/{pid}/fd")))


def server_ttfts_ms(log_text: str) -> list[float]:
    return [float(ms) for ms in re.findall(r" first token id=\d+ ms=([\d.]+)", log_text)]


# ---------------------------------------------------------------------------------------------
# The clients.


def request_body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"input": rng.choice(PROMPTS), "stream": True, "max_output_tokens": rng.randint(8, 48)}
    if rng.random() < 0.3:
        body["tools"] = [SHELL_TOOL]
    return body


async def one_request(http: httpx.AsyncClient, rng: random.Random, tally: Tally, cancel_rate: float,
                      engine: str) -> None:
    tally.requests += 1
    cut_after = rng.uniform(0.0, 0.5) if rng.random() < cancel_rate else None
    sent = time.monotonic()
    refused: httpx.Response | None = None
    try:
        async with asyncio.timeout(cut_after):
            async with http.stream("POST", "/v1/responses", json=request_body(rng)) as reply:
                if reply.status_code == 200:
                    await read_events(reply, sent, tally, engine)
                else:
                    await reply.aread()
                    refused = reply
    except TimeoutError:
        tally.outcomes["cancelled by the client"] += 1
    except httpx.HTTPError as exc:
        tally.unexpected.append(f"transport error: {exc!r}")
    if refused is not None:
        await record_refusal(refused, tally)


async def record_refusal(reply: httpx.Response, tally: Tally) -> None:
    """A 429 is expected beyond max_in_flight: count it and wait as its Retry-After says."""
    retry_after = reply.headers.get("retry-after")
    if reply.status_code == 429 and retry_after is not None and retry_after.isdigit():
        tally.outcomes["429 (max_in_flight)"] += 1
        await asyncio.sleep(int(retry_after))
    else:
        tally.unexpected.append(f"status {reply.status_code}: {reply.text[:200]}")


async def read_events(reply: httpx.Response, sent: float, tally: Tally, engine: str) -> None:
    first_output = True
    last: dict[str, Any] | None = None
    async for line in reply.aiter_lines():
        if not line.startswith("data: "):
            continue
        last = json.loads(line[6:])
        if first_output and last["type"].endswith(".delta"):
            first_output = False
            tally.client_ttft_s.append(time.monotonic() - sent)
    kind = last["type"] if last else "no events"
    if kind in ("response.completed", "response.incomplete"):
        tally.outcomes[kind] += 1
        return
    code = ((last or {}).get("response") or {}).get("error", {}).get("code")
    if kind == "response.failed" and code == "invalid_model_output" and engine != "scripted":
        tally.outcomes["failed: invalid_model_output (random weights)"] += 1
        return
    tally.unexpected.append(f"stream ended with {kind} code={code}")


async def run_clients(port: int, clients: int, seconds: float, cancel_rate: float, engine: str,
                      seed: int) -> Tally:
    tally = Tally()
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients * 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as http:

        async def worker() -> None:
            while time.monotonic() < end:
                await one_request(http, rng, tally, cancel_rate, engine)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return tally


async def watch(pid: int, started: float, samples: list[Sample], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(sample(pid, started))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def soak(port: int, pid: int, args: argparse.Namespace) -> tuple[Tally, list[Sample]]:
    samples: list[Sample] = []
    stop = asyncio.Event()
    started = time.monotonic()
    watcher = asyncio.create_task(watch(pid, started, samples, stop))
    tally = await run_clients(port, args.clients, args.seconds, args.cancel_rate, args.engine, args.seed)
    await wait_idle(port)
    stop.set()
    await watcher
    await asyncio.sleep(0.5)  # closed connections reach the daemon
    samples.append(sample(pid, started))  # the idle end, compared against the warm-up
    return tally, samples


async def wait_idle(port: int, timeout_s: float = 30.0) -> None:
    """Until the daemon reports nothing in flight (cut streams close within a step)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        while time.monotonic() < deadline:
            health = (await http.get("/health")).json()
            if health["in_flight"] == 0 and health["engine"]["stats"].get("running", 0) == 0:
                return
            await asyncio.sleep(0.2)
    raise SystemExit("the daemon did not become idle after the clients stopped")


# ---------------------------------------------------------------------------------------------
# The report.


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stability(samples: list[Sample]) -> dict[str, Any]:
    """RSS and fds after the warm-up against the end (the daemon idle again)."""
    base = samples[min(len(samples) - 1, int(len(samples) * WARMUP_SHARE))]
    end = samples[-1]
    return {"rss_after_warmup_bytes": base.rss_bytes, "rss_end_bytes": end.rss_bytes,
            "rss_max_bytes": max(s.rss_bytes for s in samples), "rss_growth_bytes": end.rss_bytes - base.rss_bytes,
            "fds_after_warmup": base.fds, "fds_end": end.fds, "fds_max": max(s.fds for s in samples),
            "stable": end.rss_bytes - base.rss_bytes <= RSS_GROWTH_LIMIT and end.fds <= base.fds + FD_SLACK}


def report(tally: Tally, samples: list[Sample], log_text: str, exit_code: int | None,
           args: argparse.Namespace) -> dict[str, Any]:
    ttfts = server_ttfts_ms(log_text)
    cancelled_server = len(re.findall(r" end reason=\w+ status=cancelled ", log_text))
    memory = stability(samples)
    unexpected = list(tally.unexpected)
    if exit_code != 0:
        unexpected.append(f"the daemon exited with {exit_code} after SIGTERM")
    errors = [line for line in log_text.splitlines() if " ERROR " in line or line.startswith("Traceback")]
    unexpected += [f"daemon log: {line[:200]}" for line in errors[:10]]
    if not memory["stable"]:
        unexpected.append("memory or file descriptors grew")
    return {"engine": args.engine, "seconds": args.seconds, "clients": args.clients, "cancel_rate": args.cancel_rate,
            "requests": tally.requests, "outcomes": dict(tally.outcomes),
            "cancelled_in_daemon": cancelled_server, "ttft_ms": {
                "count": len(ttfts), "p50": percentile(ttfts, 0.5), "p99": percentile(ttfts, 0.99),
                "max": max(ttfts, default=None)},
            "client_first_delta_p99_ms": _ms(percentile(tally.client_ttft_s, 0.99)),
            "memory": memory, "samples": [asdict(s) for s in samples], "unexpected": unexpected,
            "ok": not unexpected}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summary(result: dict[str, Any]) -> str:
    memory = result["memory"]
    return (f"{result['requests']} requests in {result['seconds']:.0f}s ({result['engine']} engine, "
            f"{result['clients']} clients): {result['outcomes']}; cancelled in the daemon: "
            f"{result['cancelled_in_daemon']}; TTFT p50 {result['ttft_ms']['p50']} ms, p99 {result['ttft_ms']['p99']} ms; "
            f"RSS {memory['rss_after_warmup_bytes'] >> 20} -> {memory['rss_end_bytes'] >> 20} MiB "
            f"(max {memory['rss_max_bytes'] >> 20}); fds {memory['fds_after_warmup']} -> {memory['fds_end']}; "
            f"unexpected: {result['unexpected'] or 'none'}")


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long the clients run")
    length.add_argument("--seconds", type=float, help="how long the clients run (default 60)")
    p.add_argument("--engine", choices=("torch", "paged", "scripted"), default="torch",
                   help="torch/paged: the tiny random checkpoint on the CPU; scripted: playback, no weights")
    p.add_argument("--clients", type=int, default=16, help="concurrent streaming clients")
    p.add_argument("--cancel-rate", type=float, default=0.3, help="share of requests abandoned mid-way")
    p.add_argument("--max-in-flight", type=int, default=12, help="limits.max_in_flight (beyond it: 429)")
    p.add_argument("--delay", type=float, default=0.005, help="scripted engine: seconds per token")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the full report here")
    args = p.parse_args(argv)
    args.seconds = args.minutes * 60 if args.minutes is not None else (args.seconds or 60.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        checkpoint = None
        if args.engine != "scripted":
            from codexpc.checkpoint import write_checkpoint
            from codexpc.engine.model_config import TINY

            checkpoint = write_checkpoint(TINY, "original", folder / "tiny", seed=0)
        config = write_config(folder, args.engine, checkpoint, args.max_in_flight)
        log_path = folder / "daemon.log"
        proc, port = start_daemon(config, log_path, args.delay)
        try:
            tally, samples = asyncio.run(soak(port, proc.pid, args))
        finally:
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(60)
        result = report(tally, samples, log_path.read_text(errors="replace"), exit_code, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
