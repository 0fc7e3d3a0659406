"""The daemon's own CPU work per streamed token, by stage, at 1 and 64 concurrent streams.

A benchmark, not a test. Run from the repository root: `python bench/daemon_overhead.py`.
The engine is scripted playback (no model): every microsecond measured is the daemon's.

Stages, each in µs of CPU per output token:
- decoder: HarmonyDecoder.feed, in process, one core;
- mapping: ResponsesStream.feed (decoder events -> Responses events), in process;
- serialization: sse.event (events -> SSE bytes), in process;
- HTTP: the rest of a real request, measured, not modelled: a child process serves the app
  with the daemon's own uvicorn protocol and security middleware on loopback, pinned to one
  core; raw-socket clients in this process (on the other core) stream responses to the end.
  The child's CPU time per token (from /proc) minus the three stages above and the scripted
  engine's own playback cost is the HTTP stage (ASGI, httptools, the event loop, socket writes).
A last run paces the playback at 6,000 tokens/s over 64 streams (the fast engine's target)
and reads the child's CPU share directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from openai_harmony import HarmonyEncoding

from codexpc.engine.api import Engine, EngineInfo, SamplingParams, TokenEvent
from codexpc.engine.scripted import ScriptedEngine
from codexpc.engine.threaded_generation import ThreadedGeneration, one_wakeup
from codexpc.harmony.decoder import HarmonyDecoder, stop_token_ids
from codexpc.harmony.encoding import load_encoding
from codexpc.harmony.tools import ToolRegistry
from codexpc.server import sse
from codexpc.server.response_object import ResponseMeta
from codexpc.server.responses_stream import ResponsesStream
from codexpc.server.usage import Usage

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "codex-0.169" / "responses-request-turn1.json"
TARGET_RATE = 6000.0  # tokens/s aggregate: the fast engine's target with 64 streams (issue 6)
FLOOD_RATE = 64000.0  # tokens/s offered in the overloaded run
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def completion(words: int) -> str:
    """A reasoning message and a final answer of real prose and code, about `words` words each."""
    if FIXTURE.is_file():
        body = json.loads(FIXTURE.read_text())
        text = "\n".join(part["text"] for item in body["input"] for part in item["content"])
    else:
        text = "Let me check the repository layout first. Der Bär läuft über die Brücke; 日本語も少し。\n" * 400
    text = " ".join(text.split(" ")[:words])
    return (f"<|channel|>analysis<|message|>{text}<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{text}<|return|>")


# -- in process: the three stages ---------------------------------------------------------------


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def stages(encoding: HarmonyEncoding, tokens: list[int], repeat: int) -> dict[str, float]:
    """µs per token of each in-process stage, and of the scripted engine's own playback."""
    registry = ToolRegistry()

    def decode() -> list[Any]:
        decoder = HarmonyDecoder(encoding, registry)
        return [event for token in tokens for event in decoder.feed(token)]

    def mapping() -> list[Any]:
        stream = ResponsesStream(ResponseMeta(id="resp_bench", model="gpt-oss-20b"))
        return stream.start() + [out for event in decoded for out in stream.feed(event)]

    def serialize() -> None:
        for event in mapped:
            sse.event(event, event.type)

    def playback() -> None:
        engine = ScriptedEngine(encoding, script=lambda _: text)
        params = SamplingParams(max_new_tokens=len(tokens) + 1, stop_token_ids=stop_token_ids(encoding))

        async def drain() -> None:
            async for _ in engine.submit([1], params, "bench"):
                pass

        asyncio.run(drain())

    text = encoding.decode_utf8(tokens)
    decoded = decode()
    mapped = mapping()
    per_token = 1e6 / len(tokens)
    return {"decoder": best_of(repeat, decode) * per_token, "mapping": best_of(repeat, mapping) * per_token,
            "serialization": best_of(repeat, serialize) * per_token,
            "playback": best_of(repeat, playback) * per_token}


# -- the paced engine: a batched engine's delivery, without a GPU ---------------------------------


class StepGeneration(ThreadedGeneration):
    """The engines' own generation, plus the playback state the paced worker keeps."""

    def __init__(self, request_id: str, tokens: list[int], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(request_id, 1, loop, on_cancel=self._mark_cancelled)
        self.tokens = tokens
        self.sent = 0  # tokens handed to the loop (worker thread only)
        self.cancelled = False

    def _mark_cancelled(self) -> None:
        self.cancelled = True


class StepEngine:
    """Every `step_s` the worker delivers one token to every running sequence, as the paged
    engine does after each batched decode step (all of a step's tokens in one wake-up)."""

    def __init__(self, encoding: HarmonyEncoding, text: str, step_s: float) -> None:
        self.info = EngineInfo(kind="bench-step", model="gpt-oss-20b", checkpoint="none", device="cpu",
                               context_length=131072)
        self._tokens = encoding.encode(text, allowed_special="all")
        self._step_s = step_s
        self._incoming: queue.SimpleQueue[StepGeneration] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, prompt: Sequence[int], params: SamplingParams, request_id: str) -> StepGeneration:
        generation = StepGeneration(request_id, self._tokens, asyncio.get_running_loop())
        self._incoming.put(generation)
        return generation

    def stats(self) -> dict[str, Any]:
        return {"running": 0, "waiting": 0}

    async def close(self) -> None:
        pass

    def _run(self) -> None:
        running: list[StepGeneration] = []
        next_step = time.monotonic()
        while True:
            while not self._incoming.empty():
                running.append(self._incoming.get())
            with one_wakeup():
                for g in running:
                    last = g.sent == len(g.tokens) - 1
                    g.deliver_threadsafe(TokenEvent(g.tokens[g.sent], "stop" if last else None))
                    g.sent += 1
            running = [g for g in running if g.sent < len(g.tokens) and not g.cancelled]
            next_step += self._step_s
            time.sleep(max(0.0, next_step - time.monotonic()))


# -- through HTTP: a served child process and raw-socket clients ---------------------------------


def serve(port: int, words: int, delay_s: float) -> None:
    """The child: the app as the daemon runs it, on loopback, until stdin closes."""
    import uvicorn

    from codexpc.server.app import create_app
    from codexpc.server.runtime import Runtime
    from codexpc.server.security import PeerCheckedProtocol, Policy, SecurityMiddleware, loopback_hosts

    encoding = load_encoding()
    text = completion(words)
    warm_up(encoding)
    engine: Engine = StepEngine(encoding, text, delay_s) if delay_s else ScriptedEngine(encoding, script=lambda _: text)
    app = SecurityMiddleware(create_app(Runtime(engine, encoding)),
                             Policy("tcp", loopback_hosts(port), None, 1 << 20))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=PeerCheckedProtocol, lifespan="off",
                            log_config=None, log_level="warning", server_header=False)
    server = uvicorn.Server(config)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    server.run()


def warm_up(encoding: HarmonyEncoding) -> None:
    """Build the openai models' validators (pydantic builds them lazily, at first use, in ms)."""
    tokens = encoding.encode(completion(10), allowed_special="all")
    decoder, stream = HarmonyDecoder(encoding, ToolRegistry()), ResponsesStream(ResponseMeta("resp_warm", "m"))
    for event in stream.start() + [out for t in tokens for e in decoder.feed(t) for out in stream.feed(e)]:
        sse.event(event, event.type)
    stream.finish(Usage(1, 0, len(tokens), 0))


def cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the whole process and of its main thread (the event loop's)."""
    return cpu_seconds(Path(f"/proc/{pid}/stat")), cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


async def one_stream(port: int) -> int:
    """Streams one response to its end; returns the bytes read."""
    body = json.dumps({"model": "gpt-oss-20b", "input": "hi", "stream": True, "max_output_tokens": 100000})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
    size, tail = 0, b""
    while chunk := await reader.read(1 << 16):
        size += len(chunk)
        tail = (tail + chunk)[-4096:]
    writer.close()
    assert b"response.completed" in tail, tail[-300:]
    return size


async def load(port: int, streams: int, requests: int) -> float:
    """`streams` clients each make `requests` requests back to back; returns the wall time."""
    async def client() -> None:
        for _ in range(requests):
            await one_stream(port)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(streams)))
    return time.perf_counter() - start


def through_http(port: int, words: int, tokens: int, streams: int, requests: int,
                 delay_s: float = 0.0) -> dict[str, float]:
    """Serve in a child pinned to the first core; stream from this process on another core."""
    cores = sorted(os.sched_getaffinity(0))
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--words", str(words),
                              "--delay", str(delay_s)], stdin=subprocess.PIPE)
    try:
        os.sched_setaffinity(child.pid, {cores[0]})
        if len(cores) > 1:
            os.sched_setaffinity(0, set(cores[1:]))
        _wait_listening(port)
        if not delay_s:  # warm up: imports, first render (the paced child warmed itself)
            asyncio.run(load(port, min(streams, 4), 1))
        before = cpu(child.pid)
        wall = asyncio.run(load(port, streams, requests))
        after = cpu(child.pid)
    finally:
        os.sched_setaffinity(0, set(cores))
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    total = tokens * streams * requests
    process, loop = after[0] - before[0], after[1] - before[1]
    return {"us_per_token": process / total * 1e6, "tokens_per_s": total / wall, "cpu_share": process / wall,
            "loop_us_per_token": loop / total * 1e6, "loop_share": loop / wall}


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            asyncio.run(asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1))
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the served child did not start")


# -- the table -----------------------------------------------------------------------------------


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    return f"{model}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=1500, help="words per message (two messages per response)")
    parser.add_argument("--paced-words", type=int, default=1500, help="words per message in the paced runs")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=18787)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paced-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.words, args.delay)
        return
    if args.paced_only:  # for profiling the child: `--paced-only` and py-spy on its pid
        paced_tokens = len(load_encoding().encode(completion(args.paced_words), allowed_special="all"))
        print(through_http(args.port, args.paced_words, paced_tokens, 64, 1, delay_s=64 / TARGET_RATE))
        return
    encoding = load_encoding()
    tokens = encoding.encode(completion(args.words), allowed_special="all")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    inproc = stages(encoding, tokens, args.repeat)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    one = through_http(args.port, args.words, len(tokens), 1, 8)
    many = through_http(args.port, args.words, len(tokens), 64, 1)
    # Paced: a batched step of 64 tokens every 64 / 6,000 s, as the fast engine at its target.
    paced_tokens = len(encoding.encode(completion(args.paced_words), allowed_special="all"))
    paced = through_http(args.port, args.paced_words, paced_tokens, 64, 1, delay_s=64 / TARGET_RATE)
    # Overloaded: the same engine offering 64,000 tok/s, far more than one core can stream.
    flood = through_http(args.port, args.paced_words, paced_tokens, 64, 1, delay_s=64 / FLOOD_RATE)
    print(report(inproc, one, many, paced, flood, len(tokens)))


def report(inproc: dict[str, float], one: dict[str, float], many: dict[str, float], paced: dict[str, float],
           flood: dict[str, float], tokens: int) -> str:
    share = TARGET_RATE / 1e6  # of one core, per µs per token
    inner = inproc["decoder"] + inproc["mapping"] + inproc["serialization"] + inproc["playback"]
    rows = [("decoder feed", inproc["decoder"], inproc["decoder"]),
            ("event mapping (Responses events)", inproc["mapping"], inproc["mapping"]),
            ("JSON/SSE serialization", inproc["serialization"], inproc["serialization"]),
            ("HTTP write (ASGI, HTTP, loop, socket)", one["us_per_token"] - inner, many["us_per_token"] - inner),
            ("daemon total (measured, less playback)", one["us_per_token"] - inproc["playback"],
             many["us_per_token"] - inproc["playback"])]
    lines = [f"daemon_overhead: {machine()}",
             f"one response = {tokens} output tokens (reasoning + final answer); scripted engine, no delay",
             "",
             f"{'stage':<40} {'1 stream':>10} {'64 streams':>11} {'CPU share at 6,000 tok/s':>25}",
             f"{'':<40} {'µs/token':>10} {'µs/token':>11} {'(64 streams)':>25}"]
    for name, a, b in rows:
        lines.append(f"{name:<40} {a:>10.1f} {b:>11.1f} {b * share:>24.1%}")
    lines += [f"{'tokens/s aggregate (as fast as possible)':<40} {one['tokens_per_s']:>10,.0f} "
              f"{many['tokens_per_s']:>11,.0f}",
              f"{'(scripted playback, excluded above)':<40} {inproc['playback']:>10.1f} {inproc['playback']:>11.1f}",
              "",
              f"paced at {TARGET_RATE:,.0f} tok/s over 64 streams (a 64-token step every {64 / TARGET_RATE * 1e3:.1f} ms, "
              f"delivered as the paged engine does): {paced['tokens_per_s']:,.0f} tok/s",
              f"  event-loop thread: {paced['loop_us_per_token']:.1f} µs/token, {paced['loop_share']:.1%} of one core",
              f"  whole process (with the playback thread's wake-ups): "
              f"{paced['us_per_token']:.1f} µs/token, {paced['cpu_share']:.1%} of one core",
              f"offered {FLOOD_RATE:,.0f} tok/s over 64 streams (the engine far ahead of the daemon): "
              f"{flood['tokens_per_s']:,.0f} tok/s streamed, event-loop thread {flood['loop_us_per_token']:.1f} µs/token"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
