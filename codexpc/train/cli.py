"""`python -m codexpc.train [--out DIR] [--force]`: train (or find) the tiny model, print its path."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from codexpc.train.cache import default_dir, ensure_trained_tiny


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codexpc.train", description=__doc__)
    parser.add_argument("--out", type=Path, help="checkpoint folder (default: the per-user cache)")
    parser.add_argument("--force", action="store_true", help="train again even if the folder holds a model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    out = args.out if args.out is not None else default_dir()
    if args.force and out.exists():
        shutil.rmtree(out)
    print(ensure_trained_tiny(out))
    return 0
