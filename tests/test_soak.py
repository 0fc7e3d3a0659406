"""The soak test's short form: scripts/soak.py for 15 s against a real daemon on loopback, on
the scripted engine. The long form (the tiny checkpoint on the CPU, minutes) is a documented
command: python scripts/soak.py --minutes 10 (docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the soak reads /proc (Linux)")
def test_short_soak_has_no_unexpected_outcome_and_stable_memory(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "15", "--engine", "scripted", "--clients", "16",
                          "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    print(run.stdout.strip())
    outcomes = result["outcomes"]
    assert result["unexpected"] == [] and result["memory"]["stable"]
    assert result["requests"] >= 200 and outcomes["cancelled by the client"] >= 20
    assert outcomes["response.completed"] + outcomes.get("response.incomplete", 0) >= 100
    assert result["cancelled_in_daemon"] >= 10 and result["ttft_ms"]["p99"] is not None
    assert result["memory"]["fds_end"] <= result["memory"]["fds_after_warmup"] + 2
