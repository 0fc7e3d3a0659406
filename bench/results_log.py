"""One machine-readable format for every bench's results: JSON lines beside the human table.

`write(out, bench, table, rows)` writes `table.txt` (what the bench printed) and `results.jsonl`
(one JSON object a figure) into `out`. Each line carries the run's facts, so a line read alone
says where it came from: bench, date (UTC), commit (with "+dirty" when the tree had changes),
device (the GPU's name, or the CPU's), torch.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"  # a copy without git
    return head + ("+dirty" if dirty else "")


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu {platform.machine()} {platform.processor() or ''}".strip()


def run_facts(bench: str) -> dict[str, Any]:
    import torch

    return {"bench": bench, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "commit": commit(), "device": device_name(), "torch": torch.__version__}


def write(out: Path, bench: str, table: str, rows: Iterable[dict[str, Any]]) -> Path:
    """-> the results.jsonl written beside table.txt in `out` (created if need be)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(table.rstrip("\n") + "\n")
    facts = run_facts(bench)
    path = out / "results.jsonl"
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps({**facts, **row}) + "\n")
    return path
