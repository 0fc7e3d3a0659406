"""kill -9 to the first token of the next request, through the user service as systemd runs it.

    python bench/restart.py [--checkpoint DIR | --size tiny|20b] [--device auto|cpu|cuda]
                            [--restarts N] [--json] [--out FILE]

The daemon runs exactly what `codexpc install` writes into the systemd user unit: the unit is
rendered from this installation (codexpc.service.systemd.render_unit) and read back
(read_unit), and its ExecStart runs with its Environment= and WorkingDirectory, in a throwaway
user's folders (HOME, XDG_RUNTIME_DIR as the user manager sets them; CODEXPC_CACHE_DIR and
CODEXPC_STATE_DIR as an installed user's). This process then plays systemd: after `kill -9` it
restarts the daemon when the unit's Restart= says so, RestartSec later.

Measured, from the first start (the kernel cache empty: every GPU kernel compiles) and from each
kill: the time to /health answering ready, and to the first token of a streamed request. The
request asks for one token (max_output_tokens 1, as Codex's LM Studio warm-up does), so the
end of its stream comes right after its first token, whatever random weights make of it. From
the daemon's log, the same clock: when its listeners were bound (the interpreter and torch
imported), when the engine had loaded (weights, kernels, CUDA graphs), when it was ready. The
kernel cache's file count after the first start comes along.

The weights: --checkpoint; else random weights of --size written into the scratch folder (tiny:
seconds and ~50 MB; 20b: ~13 GiB, a minute or two). On the GPU, for the lead:
    python bench/restart.py --size 20b --device cuda --restarts 2 --out bench/results/restart-h200.json
tests/test_service_restart.py runs it on the tiny model on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from codexpc.service.spec import build_spec  # noqa: E402
from codexpc.service.systemd import UnitService, read_unit, render_unit  # noqa: E402

READY_TIMEOUT_S = 900.0  # a 20b load and its kernels' first compile


@dataclass
class Start:
    """One start of the daemon, timed from `t0` (the first launch, or the kill before it)."""

    after: str  # "first start" or "kill -9"
    to_ready_s: float = 0.0
    to_first_token_s: float = 0.0
    kill_to_exit_s: float | None = None  # how long the killed process took to be gone
    phases_s: dict[str, float] = field(default_factory=dict)  # from the daemon's log, same clock
    last_event: str = ""  # how the one-token stream ended


@dataclass
class Report:
    machine: str
    device: str
    checkpoint: str
    restart: str
    restart_sec: float
    kernel_cache: str
    kernel_cache_files_after_first_start: int = 0
    starts: list[Start] = field(default_factory=list)


class User:
    """A throwaway user: the folders the user manager and an installed codexpc would give."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.runtime = root / "rt"  # short: socket paths are limited to ~100 bytes
        for folder in (self.home, self.runtime):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cache = root / "cache"
        self.state = root / "state"

    def install_env(self) -> dict[str, str]:
        """What was set in the shell that ran `codexpc install` (the unit carries it)."""
        return {"CODEXPC_CACHE_DIR": str(self.cache), "CODEXPC_STATE_DIR": str(self.state),
                "CODEXPC_RUNTIME_DIR": str(self.runtime / "codexpc"), "CODEXPC_CONFIG": str(self.root / "none.toml")}

    def manager_env(self) -> dict[str, str]:
        """What the systemd user manager gives every service of the user."""
        env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.runtime), "LANG": "C.UTF-8"}
        if os.environ.get("PYTHONPATH"):  # a development checkout (an installed codexpc needs none)
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return env


def unit_for(user: User, serve_args: list[str]) -> UnitService:
    saved = dict(os.environ)
    try:
        os.environ.update(user.install_env())
        text = render_unit(build_spec(serve_args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return read_unit(text)


def launch(unit: UnitService, user: User) -> subprocess.Popen[bytes]:
    out = (user.root / "daemon.out").open("ab")
    return subprocess.Popen(list(unit.argv), env={**user.manager_env(), **unit.environment},
                            cwd=unit.working_directory, stdout=out, stderr=subprocess.STDOUT)


def _client(user: User) -> httpx.Client:
    socket = user.runtime / "codexpc" / "codexpc.sock"
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://codexpc", timeout=600)


def wait_ready(user: User, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}:\n{_tail(user)}")
        try:
            with _client(user) as client:
                if client.get("/health").status_code == 200:
                    return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.05)
    raise RuntimeError(f"the daemon was not ready in {READY_TIMEOUT_S:.0f} s:\n{_tail(user)}")


def one_token(user: User) -> str:
    """Stream a one-token request to its end; the type of its last event."""
    body = {"input": "Say hello.", "stream": True, "max_output_tokens": 1}
    last = ""
    with _client(user) as client, client.stream("POST", "/v1/responses", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"the request got {reply.status_code}: {reply.read()[:500]!r}")
        for line in reply.iter_lines():
            if line.startswith("data: "):
                last = str(json.loads(line[6:]).get("type", ""))
    if last not in ("response.completed", "response.incomplete", "response.failed"):
        raise RuntimeError(f"the stream ended without a terminal event (last: {last!r})")
    return last


def _tail(user: User) -> str:
    out = user.root / "daemon.out"
    return out.read_text(errors="replace")[-3000:] if out.exists() else ""


PHASES = {"listening": "listening on unix:", "kernel_cache": "kernel cache ", "loaded": " loaded model=",
          "ready": " ready model="}


def _phases(user: User, pid: int, wall_t0: float) -> dict[str, float]:
    """Seconds from `wall_t0` to each phase's log line of process `pid` (codexpc/logs.py's format)."""
    log = user.state / "codexpc.log"
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if f"[{pid}]" not in line:
            continue
        for phase, marker in PHASES.items():
            if marker in line and phase not in found:
                stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
                found[phase] = round(stamp - wall_t0, 3)
    return found


def _timed_start(start: Start, t0: float, wall_t0: float, user: User, proc: subprocess.Popen[bytes]) -> Start:
    wait_ready(user, proc)
    start.to_ready_s = time.monotonic() - t0
    start.last_event = one_token(user)
    start.to_first_token_s = time.monotonic() - t0
    start.phases_s = _phases(user, proc.pid, wall_t0)
    return start


def run(checkpoint: Path, device: str, restarts: int, scratch: Path) -> Report:
    user = User(scratch)
    unit = unit_for(user, ["--checkpoint", str(checkpoint), "--device", device, "--no-tcp"])
    cache = user.cache / "triton"
    report = Report(machine=f"{platform.machine()} {platform.node()}", device=device, checkpoint=str(checkpoint),
                    restart=unit.restart, restart_sec=unit.restart_sec, kernel_cache=str(cache))
    t0, wall_t0 = time.monotonic(), time.time()
    proc = launch(unit, user)
    try:
        report.starts.append(_timed_start(Start("first start"), t0, wall_t0, user, proc))
        report.kernel_cache_files_after_first_start = sum(1 for p in cache.rglob("*") if p.is_file())
        for _ in range(restarts):
            t0, wall_t0 = time.monotonic(), time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            start = Start("kill -9", kill_to_exit_s=time.monotonic() - t0)
            if not unit.restarts_after(proc.returncode):
                raise RuntimeError(f"the unit (Restart={unit.restart}) would not restart after {proc.returncode}")
            time.sleep(unit.restart_sec)  # systemd waits RestartSec, then runs ExecStart again
            proc = launch(unit, user)
            report.starts.append(_timed_start(start, t0, wall_t0, user, proc))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return report


def _checkpoint(args: argparse.Namespace, scratch: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    from codexpc.checkpoint import write_checkpoint
    from codexpc.engine.model_config import GPT_OSS_20B, TINY

    config = {"tiny": TINY, "20b": GPT_OSS_20B}[args.size]
    return Path(write_checkpoint(config, "original", scratch / f"random-{args.size}", seed=0))


def _print(report: Report) -> None:
    print(f"{report.machine}, device {report.device}, unit Restart={report.restart} RestartSec={report.restart_sec}")
    print(f"kernel cache {report.kernel_cache}: {report.kernel_cache_files_after_first_start} files after the first start")
    for s in report.starts:
        phases = ", ".join(f"{k} {v:.2f}" for k, v in s.phases_s.items())
        print(f"{s.after:12s} -> ready {s.to_ready_s:6.2f} s, -> first token {s.to_first_token_s:6.2f} s"
              f"  (daemon log, s: {phases})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a checkpoint folder (default: random weights of --size)")
    parser.add_argument("--size", choices=("tiny", "20b"), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--restarts", type=int, default=2, help="kill -9 and restart this many times")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cxr-") as folder:
        scratch = Path(folder)
        report = run(_checkpoint(args, scratch), args.device, args.restarts, scratch)
    data: dict[str, Any] = asdict(report)
    if args.out:
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    if args.json:
        print(json.dumps(data))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
