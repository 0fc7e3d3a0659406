"""kill -9, then the restart the user service makes: the daemon runs the systemd unit's ExecStart
with its Environment=, this test plays systemd (Restart=, RestartSec=), and the next request gets
its token. The tiny random model on the CPU; bench/restart.py is the same flow, timed on a GPU."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from codexpc.service import systemd

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_restart", ROOT / "bench" / "restart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cxr-"))  # short: the Unix socket's path has ~100 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(sys.platform != "linux", reason="the systemd unit's flow")
def test_a_killed_daemon_is_restarted_and_answers(tiny_checkpoint: Any, scratch: Path) -> None:
    report = _bench().run(Path(tiny_checkpoint), "cpu", 1, scratch)
    assert (report.restart, report.restart_sec) == ("on-failure", systemd.RESTART_SEC)
    first, restarted = report.starts
    assert restarted.after == "kill -9" and restarted.kill_to_exit_s < 5
    assert restarted.last_event == "response.incomplete"  # the one token asked for came
    assert restarted.to_first_token_s >= systemd.RESTART_SEC  # systemd's wait is in the figure
    # Every start put Triton's cache under the user's codexpc cache, where the next start finds it.
    assert report.kernel_cache == str(scratch / "cache" / "triton") and Path(report.kernel_cache).is_dir()
    assert "kernel_cache" in first.phases_s and "kernel_cache" in restarted.phases_s
    assert restarted.phases_s["listening"] <= restarted.phases_s["ready"] <= restarted.to_ready_s + 1
