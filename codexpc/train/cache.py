"""The trained tiny checkpoint, built once per version of the training code and kept in the cache.

The cache key hashes the training package's own sources and the libraries that decide its
numbers, so a change to the recipe trains a new model and an unchanged recipe never trains
twice. Parallel callers (test workers) wait on one lock and find the first one's result.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch

from codexpc.errors import CheckpointError
from codexpc.harmony.encoding import load_encoding
from codexpc.settings import cache_dir
from codexpc.train.export import write_trained
from codexpc.train.train import TrainSettings, train
from codexpc.train.verify import verify_checkpoint

log = logging.getLogger(__name__)

LAYOUT = "original"
RECORD = "trained.json"  # written last: a folder without it is not a finished checkpoint


# The sources that decide the weights: the recipe, and the codexpc code it renders and computes
# with. The cache, the command line and the verification are not among them.
RECIPE = (
    "codexpc/train/codex_tools.py", "codexpc/train/completions.py", "codexpc/train/data.py",
    "codexpc/train/export.py", "codexpc/train/model.py", "codexpc/train/train.py",
    "codexpc/harmony/render.py", "codexpc/harmony/conversation.py", "codexpc/harmony/tools.py",
    "codexpc/engine/model.py", "codexpc/engine/mxfp4.py", "codexpc/engine/model_config.py",
)  # fmt: skip


def training_key(settings: TrainSettings = TrainSettings()) -> str:
    """A hash of everything that decides the trained weights."""
    root = Path(__file__).parents[2]
    digest = hashlib.sha256(repr(settings).encode())
    for source in RECIPE:
        digest.update(source.encode() + b"\0" + (root / source).read_bytes())
    for package in ("torch", "openai-harmony"):
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def default_dir(settings: TrainSettings = TrainSettings()) -> Path:
    return cache_dir() / "trained-tiny" / training_key(settings)


def ensure_trained_tiny(out_dir: Path | None = None, settings: TrainSettings = TrainSettings()) -> Path:
    """The checkpoint folder (for open_checkpoint and create_engine): trained now unless cached."""
    out = Path(out_dir) if out_dir is not None else default_dir(settings)
    if (out / RECORD).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be training the same key
        if not (out / RECORD).exists():
            _train_into(out, settings)
    return out


def _train_into(out: Path, settings: TrainSettings) -> None:
    log.info("training the tiny gpt-oss model into %s (once per training-code version)", out)
    trained = train(settings)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_trained(trained.model, LAYOUT, staging)
        problems = verify_checkpoint(staging, load_encoding())
        if problems:
            raise CheckpointError("the trained tiny model does not answer as trained: " + "; ".join(problems))
        record = {"key": training_key(settings), "seconds": round(trained.seconds, 1),
                  "final_loss": trained.losses[-1], "steps": len(trained.losses),
                  "torch_threads": settings.threads, "torch": torch.__version__}
        (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)  # an unfinished folder from an interrupted run
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
