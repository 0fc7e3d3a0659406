"""Cross-check: our Metal model.bin is byte-identical to upstream's converter run on our original/.

Runs only where a checkout of openai/gpt-oss is named by CODEXPC_TEST_GPT_OSS_REPO and `tiktoken`
is importable (neither is a codexpc dependency, so CI skips it). Upstream's converter assumes
head_dim 64 and 4 active experts and derives the context as initial context x factor, so the
tiny model is adjusted to fit it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from codexpc import vocab
from codexpc.checkpoint import metal_format as fmt
from codexpc.checkpoint import write_checkpoint
from codexpc.engine.model_config import TINY

REPO = os.environ.get("CODEXPC_TEST_GPT_OSS_REPO")
SCRIPT = Path(REPO or ".") / "gpt_oss" / "metal" / "scripts" / "create-local-model.py"
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REPO and SCRIPT.is_file()), reason="no openai/gpt-oss checkout named"),
]


def test_metal_writer_matches_upstream_create_local_model(tmp_path: Path) -> None:
    pytest.importorskip("tiktoken")
    config = replace(TINY, head_dim=64, experts_per_token=4, context_length=TINY.initial_context_length * 32)
    original = write_checkpoint(config, "original", tmp_path / "original", seed=5)
    ours = write_checkpoint(config, "metal", tmp_path / "ours", seed=5)
    # tiktoken finds o200k in its cache (file named by the URL's SHA-1) and never downloads it
    folder = vocab.resolve()
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    shutil.copy(folder / vocab.FILENAME, cache / hashlib.sha1(TIKTOKEN_URL.encode()).hexdigest())
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache), "TIKTOKEN_ENCODINGS_BASE": str(folder)}
    upstream = tmp_path / "upstream.bin"
    subprocess.run(
        [sys.executable, str(SCRIPT), "-s", str(original), "-d", str(upstream)], env=env, check=True
    )
    theirs, mine = bytearray(upstream.read_bytes()), ours.read_bytes()
    # Upstream gives id 200008 two names, <|message|> and <|reversed200008|>. tiktoken 0.14 decodes it
    # as <|message|> (its UUID); that rests on tiktoken's map order, so zeros there are tolerated.
    slot = fmt.PREFIX_BYTES + 16 * (200008 - 199998)
    if theirs[slot : slot + 16] == bytes(16):
        theirs[slot : slot + 16] = fmt.SPECIAL_UUIDS[200008]
    assert theirs == mine
