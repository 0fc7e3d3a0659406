"""kill -9 in the middle of writes: the database reopens intact, and the last response the
writer reported committed is readable. The writer is a real separate process (the daemon's
store code, nothing mocked), killed by SIGKILL while it commits in a loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from codexpc.store import ResponseStore, StoreConfig

WRITER = r"""
import sys
from pathlib import Path
from codexpc.store import ResponseStore, StoreConfig
store = ResponseStore.open(StoreConfig(folder=Path(sys.argv[1])))
big = "x" * 20000  # large rows: the kill lands inside a write, not between them
for i in range(1_000_000):
    rid = f"resp_{i}"
    store.put({"id": rid, "object": "response", "created_at": i, "output": [], "pad": big},
              [{"role": "user", "content": big} for _ in range(4)])
    print(rid, flush=True)  # after the commit returned
"""


def test_the_database_survives_kill_9_mid_write(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env)
    assert writer.stdout is not None
    committed: list[str] = []
    deadline = time.monotonic() + 60
    while len(committed) < 40 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        assert line, "the writer died on its own"
        committed.append(line.strip())
    time.sleep(0.01)  # into the next writes
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    committed += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
    assert writer.returncode == -signal.SIGKILL and len(committed) >= 40

    store = ResponseStore.open(StoreConfig(folder=tmp_path))  # runs quick_check; raises if damaged
    last = store.get(committed[-1])
    assert last is not None and last["id"] == committed[-1]
    listed = store.input_items(committed[-1])
    assert listed is not None and len(listed["data"]) == 4
    assert store.stats()["stored_responses"] >= len(committed)
    store.put({"id": "resp_after", "object": "response", "created_at": 0, "output": []}, "hi")  # still writable
    assert store.get("resp_after") is not None
    store.close()
