"""The whole daemon end to end on the paged engine: HTTP + SSE + Harmony decoder + the model.

    python bench/daemon_e2e.py [--checkpoint DIR] [--streams 1,64] [--tokens 256] [--out DIR]

A child process serves the paged engine with the daemon's own code, as `codexpc serve` does
(codexpc.server.daemon.serve: the Unix socket and loopback TCP bound first, the engine built
in a thread, one uvicorn server per listener behind the security middleware, logging at info
to a file). The weights: --checkpoint; else on CUDA random weights of gpt-oss-20b's shapes made
on the GPU (bench/fast_engine_parts.random_model); else on the CPU the tiny random checkpoint
of `codexpc smoke`. This process is the client: the official openai package (AsyncOpenAI,
responses.create(stream=True)), N concurrent streams each asking for --tokens output tokens
(max_output_tokens), temperature 0 as in the engine-only benches.

Token choice scripted; model forward real. Random weights emit noise, which the Harmony decoder
rightly rejects, so the child replaces the paged engine's token choice (ModelRunner._sample_on_device):
every step still runs the full forward pass (CUDA graphs and all) and its sampling kernels, and
then each sequence gets the next token of a scripted completion instead, on the device, which is
fed back as the next input (a step run ahead starts from it, as from a real choice). The GPU work is that of a real decode; the text is a valid Harmony
answer of exactly --tokens tokens: an analysis message, then a final message of real prose and
code (bench/daemon_overhead.completion's text, o200k tokens), then <|return|>.

Engine alone: before it serves, the child runs the same PagedEngine at the same concurrency on
the same rendered prompts and SamplingParams, iterating its generations on an event loop (no
HTTP, no decoder). Through the daemon: each stream's TTFT (to the first text delta, the engine's
counterpart being its first text token), the steady rate (tokens after each stream's first text
token, over the time from the first one to the last end), the SSE deltas received, and a check
that the streamed reasoning and answer equal the script. CPU time per token is read from
/proc (schedstat, ns) for the child's event-loop thread (the daemon's own work: HTTP, decoder,
events, SSE), its engine worker thread and the whole process. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARMUP_TOKENS = 16  # output tokens of the warm-up pass before each side's measured runs
READY_TIMEOUT_S = 900.0  # a real checkpoint's load and the graph capture
NOTE = "token choice scripted; model forward real"


# -- shared by both processes: the script, the requests, the figures ------------------------------


@dataclass(frozen=True)
class Script:
    tokens: list[int]  # the whole completion, <|return|> last
    first_text: int  # index of the first token that streams text (after the channel header)
    analysis_tokens: int
    final_tokens: int
    reasoning: str
    final: str


@dataclass
class StreamTimes:
    start: float  # perf_counter seconds
    first: float  # first text token (engine) or first text delta (daemon)
    end: float  # last token (engine) or response.completed (daemon)
    tokens: int
    ok: bool = True


def request(model: str, tag: str, index: int, tokens: int) -> dict[str, Any]:
    """One stream's Responses request, as the openai client's keyword arguments."""
    return {"model": model, "max_output_tokens": tokens, "temperature": 0,
            "input": f"[{tag} #{index}] Read the repository's README and explain how a request is served."}


def summarize(times: Sequence[StreamTimes], first_text: int) -> dict[str, Any]:
    ttft = [(t.first - t.start) * 1e3 for t in times]
    steady = sum(t.tokens - first_text - 1 for t in times) / (max(t.end for t in times) - min(t.first for t in times))
    wall = max(t.end for t in times) - min(t.start for t in times)
    return {"ttft_ms_median": statistics.median(ttft), "ttft_ms_max": max(ttft), "steady_tok_s": steady,
            "wall_tok_s": sum(t.tokens for t in times) / wall, "wall_s": wall,
            "tokens": float(sum(t.tokens for t in times)), "ttft_ms": [round(x, 2) for x in ttft]}


def task_cpu_s(pid: int, tid: int) -> float:
    """CPU seconds of one thread, from schedstat (ns), else from stat (ticks, 10 ms)."""
    task = Path(f"/proc/{pid}/task/{tid}")
    if (task / "schedstat").exists():
        return int((task / "schedstat").read_text().split()[0]) / 1e9
    fields = (task / "stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_snapshot(pid: int, loop_tid: int, worker_tid: int) -> dict[str, float]:
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += task_cpu_s(pid, int(task.name))
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            pass
    return {"process": total, "loop": task_cpu_s(pid, loop_tid), "engine": task_cpu_s(pid, worker_tid)}


def cpu_per_token(before: dict[str, float], after: dict[str, float], tokens: float) -> dict[str, float]:
    return {f"cpu_us_{k}": (after[k] - before[k]) / tokens * 1e6 for k in before} | {
        f"cpu_s_{k}": after[k] - before[k] for k in before}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


# -- the child: the engine, measured alone, then served by the daemon -----------------------------


def make_script(encoding: Any, n: int) -> Script:
    from bench.daemon_overhead import completion

    header = encoding.encode("<|channel|>analysis<|message|>", allowed_special="all")
    switch = encoding.encode("<|end|><|start|>assistant<|channel|>final<|message|>", allowed_special="all")
    room = n - len(header) - len(switch) - 1
    if room < 4:
        raise SystemExit(f"--tokens must be at least {n - room + 4}")
    prose = completion(4 * n + 100).split("<|message|>", 1)[1].split("<|end|>", 1)[0]
    ordinary = encoding.encode(prose, allowed_special=set())
    analysis, a_at = _clean_slice(encoding, ordinary, 0, room // 4)
    final, _ = _clean_slice(encoding, ordinary, a_at + room // 4, room - room // 4)
    tokens = header + analysis + switch + final + encoding.encode("<|return|>", allowed_special="all")
    assert len(tokens) == n, (len(tokens), n)
    return Script(tokens, len(header), len(analysis), len(final), encoding.decode_utf8(analysis),
                  encoding.decode_utf8(final))


def _clean_slice(encoding: Any, tokens: list[int], start: int, length: int) -> tuple[list[int], int]:
    """`length` tokens from `start` on (or a little later) that decode to whole UTF-8 characters."""
    for at in range(start, len(tokens) - length):
        piece = tokens[at:at + length]
        try:
            text = encoding.decode_utf8(piece)
        except Exception:  # noqa: BLE001 - openai-harmony raises its own error on a split character
            continue
        if text[:1].isalnum():  # starts a word: no split character, no leading space or stray comma
            return piece, at
    raise SystemExit("the completion text is too short for --tokens")


def script_token_choice(script: Script) -> None:
    """Keep the runner's forward pass and sampling; hand each sequence its next scripted token."""
    import torch

    from codexpc.engine.paged.model_runner import ModelRunner

    real_sample = ModelRunner._sample_on_device
    tokens, stop = script.tokens, script.tokens[-1]

    def scripted_sample(host: Any, logits: Any, generators: Any) -> Any:
        real_sample(host, logits, generators)  # the real sampling kernels
        # On the device, as the real choice is: a step run ahead starts from these tokens.
        return torch.tensor([tokens[seq.num_output_tokens] if seq.num_output_tokens < len(tokens) else stop
                             for seq in host.samplers], device=logits.device)

    ModelRunner._sample_on_device = staticmethod(scripted_sample)  # type: ignore[method-assign]


def build_engine(model: str, checkpoint: Path, device: str, random_20b: bool) -> Any:
    from codexpc.engine.factory import create_engine, resolve_device

    if not random_20b:
        return create_engine("paged", model=model, checkpoint=checkpoint, device=device)
    import torch

    from bench.fast_engine_parts import random_model
    from codexpc.engine.api import EngineInfo
    from codexpc.engine.model_config import GPT_OSS_20B as CONFIG
    from codexpc.engine.paged.paged_engine import build_paged_engine

    dev = resolve_device(device)
    if dev.index is not None:  # random_model builds on the current device
        torch.cuda.set_device(dev)
    torch.manual_seed(0)
    transformer = random_model(CONFIG)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()  # free_bytes sees only what the caching allocator gave back
    info = EngineInfo("paged", model, str(checkpoint), str(dev), CONFIG.context_length)
    return build_paged_engine(transformer, info)


async def engine_pass(engine: Any, prompts: list[list[int]], params: Any, first_text: int,
                      tag: str) -> list[StreamTimes]:
    async def one(i: int, prompt: list[int]) -> StreamTimes:
        start, first, tokens, finish = time.perf_counter(), None, 0, None
        async for event in engine.submit(prompt, params, f"{tag}-{i}"):
            if event.token_id is not None:
                tokens += 1
                if tokens == first_text + 1:
                    first = time.perf_counter()
            finish = event.finish_reason
        end = time.perf_counter()
        return StreamTimes(start, first or end, end, tokens, finish in ("stop", "length"))

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def engine_alone(engine: Any, encoding: Any, script: Script, spec: dict[str, Any], effort: str) -> dict[str, Any]:
    from codexpc.engine.api import SamplingParams
    from codexpc.harmony.decoder import stop_token_ids
    from codexpc.harmony.render import RenderOptions, render_responses

    options = RenderOptions(default_effort=effort)  # type: ignore[arg-type]

    def prompts(tag: str, n: int) -> list[list[int]]:
        return [render_responses(request(spec["model"], tag, i, spec["tokens"]), encoding, options).tokens
                for i in range(n)]

    params = SamplingParams(temperature=0.0, max_new_tokens=spec["tokens"], stop_token_ids=stop_token_ids(encoding))
    warm = replace(params, max_new_tokens=min(WARMUP_TOKENS, spec["tokens"]))
    asyncio.run(engine_pass(engine, prompts("engine warm-up", max(spec["streams"])), warm, 0, "warm"))
    pid, me, worker = os.getpid(), threading.get_native_id(), engine._worker.native_id
    out: dict[str, Any] = {"prompt_tokens": len(prompts("x", 1)[0])}
    for n in spec["streams"]:
        batch = prompts(f"engine {n}", n)
        before = cpu_snapshot(pid, me, worker)
        times = asyncio.run(engine_pass(engine, batch, params, script.first_text, f"alone{n}"))
        after = cpu_snapshot(pid, me, worker)
        figures = summarize(times, script.first_text)
        out[str(n)] = figures | cpu_per_token(before, after, figures["tokens"]) | {
            "ok": all(t.ok and t.tokens == spec["tokens"] for t in times)}
    return out


def device_name(engine: Any) -> str:
    import torch

    if engine.info.device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(engine.info.device))
    return cpu_model()


def child(spec: dict[str, Any]) -> int:
    """The daemon process: build, measure the engine alone, then serve until SIGTERM."""
    from codexpc import logs
    from codexpc.config import load_config
    from codexpc.harmony.encoding import load_encoding
    from codexpc.server.daemon import serve

    work = Path(spec["workdir"])
    handler = logging.FileHandler(work / "daemon.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(logs.FILE_FORMAT, logs.TIME_FORMAT))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)  # the daemon's default log level
    checkpoint = Path(spec["checkpoint"])
    encoding = load_encoding(checkpoint=checkpoint if checkpoint.exists() else None)
    script = make_script(encoding, spec["tokens"])
    script_token_choice(script)
    (work / "config.toml").write_text("")  # not the user's config file
    most = max(spec["streams"])
    config = load_config(work / "config.toml", {
        "model": spec["model"], "engine": "paged", "checkpoint": checkpoint, "device": spec["device"],
        "hosts": ["127.0.0.1"], "port": spec["port"], "socket": work / "codexpc.sock", "log_level": "info",
        "queue_size": max(64, most), "max_in_flight": max(128, 2 * most)})

    def engine_factory(kind: str, *, model: str, checkpoint: Path, device: str) -> Any:
        started = time.perf_counter()
        engine = build_engine(model, checkpoint, device, spec["random_20b"])
        built = time.perf_counter() - started
        alone = engine_alone(engine, encoding, script, spec, config.default_reasoning_effort)
        import torch

        facts = {"device": device_name(engine), "engine_device": engine.info.device, "build_s": built,
                 "budget": asdict(engine.budget), "worker_tid": engine._worker.native_id,
                 "torch": torch.__version__, "python": platform.python_version(), "script": asdict(script)}
        partial = work / "engine.json.partial"
        partial.write_text(json.dumps({"facts": facts, "engine": alone}))
        partial.rename(work / "engine.json")
        return engine

    return serve(config, engine_factory=engine_factory)


# -- this process: the clients -------------------------------------------------------------------


@dataclass
class Streamed:
    times: StreamTimes
    reasoning_deltas: int = 0
    text_deltas: int = 0
    text_ok: bool = False
    events: dict[str, int] = field(default_factory=dict)


async def one_stream(client: Any, body: dict[str, Any], script: Script | None) -> Streamed:
    start, first, end = time.perf_counter(), None, None
    reasoning: list[str] = []
    text: list[str] = []
    events: dict[str, int] = {}
    response = None
    stream = await client.responses.create(**body, stream=True)
    async for event in stream:
        now = time.perf_counter()
        events[event.type] = events.get(event.type, 0) + 1
        if event.type in ("response.reasoning_text.delta", "response.output_text.delta"):
            first = first or now
            (reasoning if event.type == "response.reasoning_text.delta" else text).append(event.delta)
        elif event.type in ("response.completed", "response.incomplete", "response.failed"):
            end, response = now, event.response
    end = end or time.perf_counter()
    tokens = response.usage.output_tokens if response is not None and response.usage is not None else 0
    done = response is not None and response.status == "completed"
    ok = script is not None and done and "".join(text) == script.final and "".join(reasoning) == script.reasoning
    return Streamed(StreamTimes(start, first or end, end, tokens, done), len(reasoning), len(text), ok, events)


async def daemon_passes(client: Any, spec: dict[str, Any], script: Script, child_pid: int,
                        worker: int) -> dict[str, Any]:
    model, n_tokens = spec["model"], spec["tokens"]
    warm = [request(model, "daemon warm-up", i, min(WARMUP_TOKENS, n_tokens)) for i in range(max(spec["streams"]))]
    await asyncio.gather(*(one_stream(client, body, None) for body in warm))
    out: dict[str, Any] = {}
    for n in spec["streams"]:
        bodies = [request(model, f"daemon {n}", i, n_tokens) for i in range(n)]
        before, client_before = cpu_snapshot(child_pid, child_pid, worker), time.process_time()
        streams = await asyncio.gather(*(one_stream(client, body, script) for body in bodies))
        after, client_cpu = cpu_snapshot(child_pid, child_pid, worker), time.process_time() - client_before
        figures = summarize([s.times for s in streams], script.first_text)
        events = sum(sum(s.events.values()) for s in streams)
        out[str(n)] = figures | cpu_per_token(before, after, figures["tokens"]) | {
            "reasoning_deltas": sum(s.reasoning_deltas for s in streams),
            "text_deltas": sum(s.text_deltas for s in streams), "sse_events": events,
            "text_ok": sum(s.text_ok for s in streams), "streams": n,
            "tokens_ok": all(s.times.tokens == n_tokens for s in streams),
            "client_us_per_event": client_cpu / events * 1e6, "client_cpu_share": client_cpu / figures["wall_s"],
            "events_seen": streams[0].events}
    return out


async def clients(spec: dict[str, Any], script: Script, child_pid: int, worker: int) -> dict[str, Any]:
    import importlib

    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    # The openai package's own HTTP library (httpx, or a fork of it in some builds).
    hx: Any = importlib.import_module(DefaultAsyncHttpxClient.__mro__[1].__module__.partition(".")[0])
    limits = hx.Limits(max_connections=max(spec["streams"]) + 8, max_keepalive_connections=max(spec["streams"]) + 8)
    if spec["transport"] == "unix":
        base = "http://codexpc/v1"
        http = DefaultAsyncHttpxClient(transport=hx.AsyncHTTPTransport(uds=spec["socket"], limits=limits),
                                       trust_env=False, timeout=600)
    else:
        base = f"http://127.0.0.1:{spec['port']}/v1"
        http = DefaultAsyncHttpxClient(limits=limits, trust_env=False, timeout=600)
    client = AsyncOpenAI(base_url=base, api_key="codexpc-bench", max_retries=0, http_client=http)
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=spec["socket"])) as unix:
        health = (await unix.get("http://codexpc/health")).json()  # the Unix listener serves too
    results = await daemon_passes(client, spec, script, child_pid, worker)
    await client.close()
    return {"health": health, "daemon": results}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], work: Path, port: int) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited with {proc.returncode}; log:\n{_log_tail(work)}")
            if (work / "engine.json").exists():
                try:
                    if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        return json.loads((work / "engine.json").read_text())
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
    raise SystemExit(f"the daemon was not ready in {READY_TIMEOUT_S:.0f} s; log:\n{_log_tail(work)}")


def _log_tail(work: Path, lines: int = 30) -> str:
    log = work / "daemon.log"
    return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no log)"


def weights(args: argparse.Namespace, device: str) -> tuple[Path, str, bool]:
    """The checkpoint (or a name for random weights), the served model name, and whether random 20b."""
    if args.checkpoint is not None:
        return args.checkpoint.expanduser().resolve(), "gpt-oss-20b", False
    from codexpc.engine.factory import resolve_device

    if resolve_device(device).type == "cuda":
        return Path("random-weights-gpt-oss-20b-shapes"), "gpt-oss-20b", True
    from codexpc.cli.smoke import SYNTHETIC_MODEL, tiny_checkpoint

    return tiny_checkpoint(), SYNTHETIC_MODEL, False


def run(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    streams = [int(s) for s in args.streams.split(",")]
    work = Path(tempfile.mkdtemp(prefix="codexpc-e2e-"))
    checkpoint, model, random_20b = weights(args, args.device)
    spec = {"workdir": str(work), "checkpoint": str(checkpoint), "model": model, "random_20b": random_20b,
            "device": args.device, "streams": streams, "tokens": args.tokens, "port": free_port(),
            "socket": str(work / "codexpc.sock"), "transport": args.transport}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)])
    try:
        engine = wait_ready(proc, work, spec["port"])
        print(f"daemon ready in {time.perf_counter() - started:.0f} s (engine built in "
              f"{engine['facts']['build_s']:.0f} s, then measured alone)", flush=True)
        script = Script(**engine["facts"]["script"])
        served = asyncio.run(clients(spec, script, proc.pid, engine["facts"]["worker_tid"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"spec": spec, **engine, **served}, indent=1))
        (args.out / "daemon.log").write_text((work / "daemon.log").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return report(spec, engine, served, code), figures(spec, engine, served)


def figures(spec: dict[str, Any], engine: dict[str, Any], served: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's figures, one dict each, for results.jsonl."""
    rows = []
    for n in spec["streams"]:
        alone, daemon = engine["engine"][str(n)], served["daemon"][str(n)]
        for name, key, _ in ROWS:
            rows.append({"streams": n, "figure": name, "key": key, "engine_alone": alone[key],
                         "through_daemon": daemon[key], "tokens": spec["tokens"], "random_20b": spec["random_20b"],
                         "text_ok": daemon["text_ok"] == n and alone["ok"]})
    return rows


# -- the table -----------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str], ...] = (
    ("TTFT to first text token, median (ms)", "ttft_ms_median", "{:.1f}"),
    ("TTFT to first text token, slowest stream (ms)", "ttft_ms_max", "{:.1f}"),
    ("decode, aggregate steady (tok/s)", "steady_tok_s", "{:,.1f}"),
    ("end to end incl. TTFT (tok/s)", "wall_tok_s", "{:,.1f}"),
    ("CPU µs/token: whole process", "cpu_us_process", "{:.1f}"),
    ("CPU µs/token: engine worker thread", "cpu_us_engine", "{:.1f}"),
    ("CPU µs/token: event-loop thread (*)", "cpu_us_loop", "{:.1f}"),
)


def report(spec: dict[str, Any], engine: dict[str, Any], served: dict[str, Any], exit_code: int) -> str:
    facts, script = engine["facts"], engine["facts"]["script"]
    head = f"{'figure':<50} {'engine alone':>14} {'through the daemon':>20} {'daemon/alone':>13}"
    lines = [f"daemon_e2e on {facts['device']} ({facts['engine_device']}); torch {facts['torch']}, "
             f"Python {facts['python']}",
             f"{NOTE}: every step runs the full forward pass and its sampling; the scripted token is fed back on the device",
             f"weights: {'random, gpt-oss-20b shapes, made on the GPU' if spec['random_20b'] else spec['checkpoint']} "
             f"(served as {spec['model']}); {facts['budget']['max_num_seqs']} sequences a step at most",
             f"each stream: a {engine['engine']['prompt_tokens']}-token prompt, {spec['tokens']} output tokens "
             f"(analysis {script['analysis_tokens']}, final {script['final_tokens']} tokens of text), temperature 0; "
             f"client: openai AsyncOpenAI over {'the Unix socket' if spec['transport'] == 'unix' else 'loopback TCP'}",
             "", head, "-" * len(head)]
    for n in spec["streams"]:
        alone, daemon = engine["engine"][str(n)], served["daemon"][str(n)]
        lines.append(f"{n} stream{'s' if n > 1 else ''}")
        for name, key, fmt in ROWS:
            a, d = alone[key], daemon[key]
            lines.append(f"  {name:<48} {fmt.format(a):>14} {fmt.format(d):>20} {d / a if a else 0:>13.2f}")
        lines.append(f"  {'SSE deltas received: reasoning + text':<48} {'-':>14} "
                     f"{daemon['reasoning_deltas']:>9} + {daemon['text_deltas']:<8} {'':>13}")
        lines.append(f"  {'streams whose text = the script (all tokens)':<48} "
                     f"{n if alone['ok'] else 'NO':>14} {daemon['text_ok']:>20} {'':>13}")
    lines += ["", "(*) engine alone: the loop that iterates the generations; through the daemon: the daemon's "
              "own work (HTTP, decoder, events, SSE)"]
    for n in spec["streams"]:
        daemon = served["daemon"][str(n)]
        per_token = 1e6 / daemon["steady_tok_s"]
        lines.append(f"{n} stream(s): the event loop's {daemon['cpu_us_loop']:.1f} µs/token is "
                     f"{daemon['cpu_us_loop'] / per_token:.1%} of the {per_token:.1f} µs of wall time per token; "
                     f"client CPU {daemon['client_us_per_event']:.0f} µs/event, {daemon['client_cpu_share']:.0%} "
                     f"of a core")
    bad = [n for n in spec["streams"] if served["daemon"][str(n)]["text_ok"] != n
           or not served["daemon"][str(n)]["tokens_ok"] or not engine["engine"][str(n)]["ok"]]
    lines.append(f"checks: {'all streams complete and equal to the script' if not bad else f'FAILED at {bad}'}; "
                 f"daemon health over the Unix socket: {served['health']['status']}; daemon exit code {exit_code}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="serve this checkpoint (default: random weights)")
    parser.add_argument("--streams", default="1,64", help="concurrent streams, one run each (comma-separated)")
    parser.add_argument("--tokens", type=int, default=256, help="output tokens per stream")
    parser.add_argument("--device", default="auto", help='"auto", "cuda", "cuda:1", "cpu"')
    parser.add_argument("--transport", choices=("tcp", "unix"), default="tcp", help="the clients' listener")
    parser.add_argument("--out", type=Path, help="write table.txt, results.jsonl (bench/results_log.py), results.json "
                        "(every raw number) and daemon.log here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(child(json.loads(args.child)))
    table, rows = run(args)
    print(table)
    if args.out is not None:
        from bench import results_log

        results_log.write(args.out, "daemon_e2e", table, rows)


if __name__ == "__main__":
    main()
