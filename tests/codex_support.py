"""Real Codex CLIs (the versions in tests/codex_versions.txt) against a real daemon on the scripted engine.

`CodexDaemon` is `codexpc serve` in a subprocess whose scripted engine plays `codex_script`: the
user's prompt picks the scenario (PLAIN, TOOL, THREE, PATCH). Until the lead merges
/work/notes/codex-wiring.patch, the launcher applies the same wiring to the app the daemon builds
(the Ollama and LM Studio routers, /v1/models listing every name, the admission queue); once
app.py has it, the launcher leaves the app as it is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import DaemonProcess

REPO = Path(__file__).resolve().parent.parent
VERSIONS = [v for v in (REPO / "tests" / "codex_versions.txt").read_text().split() if not v.startswith("#")
            and re.fullmatch(r"\d+\.\d+\.\d+", v)]
PATCHED_FILE, PATCHED_TEXT = "patched.txt", "written by apply_patch"

LAUNCHER = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
sys.path.insert(0, sys.argv[3])
import codex_support
from codexpc.config import load_config
from codexpc.server import daemon

delay = float(sys.argv[2])

def engine_factory(kind, *, model, checkpoint, device="auto"):
    from codexpc.engine.scripted import ScriptedEngine
    from codexpc.harmony.encoding import load_encoding
    return ScriptedEngine(load_encoding(), model=model, delay_s=delay, script=codex_support.codex_script)

sys.exit(daemon.serve(load_config(Path(sys.argv[1])), engine_factory=engine_factory))
"""


# -- the scripted model -------------------------------------------------------------------------

_LAST_USER = "<|start|>user<|message|>"
_TOOL_OUTPUT = re.compile(r"<\|start\|>functions\.[\w.-]+ to=assistant<\|channel\|>\w+<\|message\|>(.*?)<\|end\|>", re.S)
PATCH = f"*** Begin Patch\n*** Add File: {PATCHED_FILE}\n+{PATCHED_TEXT}\n*** End Patch\n"


def _call(name: str, body: str, custom: bool = False) -> str:
    kind = "code" if custom else "<|constrain|>json"
    return ("<|channel|>analysis<|message|>**Planning** I will use a tool for this step.<|end|>"
            f"<|start|>assistant<|channel|>commentary to=functions.{name} {kind}<|message|>{body}<|call|>")


def _answer(text: str) -> str:
    return ("<|channel|>analysis<|message|>The work is done. I will say what happened.<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{text}<|return|>")


def codex_script(prompt: str) -> str:
    """The completion for a Codex prompt; the scenario is the prompt's first word."""
    turn = prompt.rpartition(_LAST_USER)[2]
    question = turn.partition("<|end|>")[0]
    outputs = _TOOL_OUTPUT.findall(turn)
    shell = json.dumps({"cmd": "echo codexpc-step"})
    if question.startswith("TOOL") and not outputs:
        return _call("exec_command", shell)
    if question.startswith("THREE") and len(outputs) < 3:
        return _call("exec_command", json.dumps({"cmd": f"echo codexpc-step-{len(outputs) + 1}"}))
    if question.startswith("HOLD"):  # a long answer: holds its place in the daemon for seconds
        return _answer(" ".join(["held"] * 100))
    if question.startswith("PATCH") and not outputs:
        if "type apply_patch = (_: string) => any;" not in prompt:
            return _answer("apply_patch was not offered as a freeform tool")
        return _call("apply_patch", PATCH, custom=True)
    return _answer(f"Done after {len(outputs)} tool calls.")


class CodexDaemon(DaemonProcess):
    """DaemonProcess with the Codex script."""

    def start(self, wait: bool = True) -> CodexDaemon:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(self.config_path), str(self.delay_s), str(REPO / "tests")],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if wait:
            self.wait_ready()
        return self


# -- Codex -----------------------------------------------------------------------------------------

def codex_path(version: str) -> Path:
    folder = REPO / ".cache" / ("codex" if version == "0.169.0" and not (REPO / ".cache" / f"codex-{version}").exists()
                                else f"codex-{version}")
    binary = folder / "node_modules" / ".bin" / "codex"
    if binary.exists():
        return binary
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"Codex {version} is missing at {binary}: CI must run `make codex-cli` first")
    pytest.skip(f"Codex {version} is not installed at {binary} (run `make codex-cli`)")


def codex_env(home: Path, **extra: str) -> dict[str, str]:
    nowhere = "http://127.0.0.1:9"  # anything Codex tries beyond loopback goes nowhere
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "CODEX_HOME": str(home),
            "HTTP_PROXY": nowhere, "HTTPS_PROXY": nowhere, "ALL_PROXY": nowhere,
            "NO_PROXY": "127.0.0.1,localhost,::1", "RUST_LOG": "warn", **extra}


def configure(home: Path, port: int, retries: int = 0, oss: str | None = None) -> None:
    """Codex's folder as `codexpc codex-config` writes it, plus what keeps a test offline.

    `oss`: "ollama" or "lmstudio", for `codex --oss` (the catalog then goes into config.toml, as
    the README tells an --oss user to do)."""
    import tomlkit

    from codexpc import codex_config

    names = ("gpt-oss-20b", "gpt-oss:20b", "openai/gpt-oss-20b")
    target = codex_config.CodexTarget(codex_config.base_url(port), context_window=131072, catalog_names=names)
    codex_config.apply(target, home)
    path = home / "config.toml"
    doc = tomlkit.parse(path.read_text())
    doc["model_providers"]["codexpc"]["stream_max_retries"] = retries  # type: ignore[index]
    doc["model_providers"]["codexpc"]["request_max_retries"] = retries  # type: ignore[index]
    top = {"check_for_update_on_startup": False}
    if oss:
        top |= {"oss_provider": oss, "model_catalog_json": str(home / codex_config.CATALOG_FILE)}
    text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in top.items()) + tomlkit.dumps(doc)
    path.write_text(text + "\n[analytics]\nenabled = false\n")


def run_codex(version: str, home: Path, workdir: Path, prompt: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> tuple[list[dict], str]:
    """`codex exec --json` (its JSONL events, its stderr)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(codex_path(version)), "exec", "--json", "--skip-git-repo-check", *args, "--cd", str(workdir), prompt]
    done = subprocess.run(command, env=env or codex_env(home), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    return events, done.stderr.decode(errors="replace")


def items(events: list[dict], kind: str) -> list[dict]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]
