"""The o200k vocabulary resolves offline, is checked by SHA-256, and fails clearly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from codexpc import vocab
from codexpc.errors import VocabularyError


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEXPC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CODEXPC_VOCAB", raising=False)
    return tmp_path / "cache"


def test_quicktok_rebuilds_the_genuine_file() -> None:
    data = vocab.from_quicktok()
    assert hashlib.sha256(data).hexdigest() == vocab.SHA256


def test_resolve_fills_the_cache_then_uses_it(empty_cache: Path) -> None:
    folder = vocab.resolve()
    cached = folder / vocab.FILENAME
    assert cached.is_file() and folder.parent == empty_cache
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == vocab.SHA256
    assert vocab.resolve() == folder


def test_explicit_wrong_file_is_rejected_and_next_source_used(empty_cache: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "o200k_base.tiktoken"
    bogus.write_bytes(b"not a vocabulary\n")
    folder = vocab.resolve(explicit=bogus)
    assert (folder / vocab.FILENAME).read_bytes() != bogus.read_bytes()


def test_tokenizer_json_source_round_trips(empty_cache: Path, tmp_path: Path) -> None:
    # Build a tokenizer.json the way Hugging Face stores byte-level BPE, from the genuine ranks.
    lines = vocab.from_quicktok().decode().splitlines()
    import base64

    encode = {b: ch for ch, b in vocab._byte_decoder().items()}
    model_vocab = {
        "".join(encode[b] for b in base64.b64decode(tok)): int(rank)
        for tok, rank in (line.split() for line in lines)
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": model_vocab}}))
    data = vocab.from_tokenizer_json(tmp_path / "tokenizer.json")
    assert hashlib.sha256(data).hexdigest() == vocab.SHA256


def test_no_source_names_every_attempt(empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bytes:
        raise ImportError("quicktok")

    monkeypatch.setattr(vocab, "from_quicktok", broken)
    with pytest.raises(VocabularyError) as info:
        vocab.resolve(explicit=tmp_path / "missing.tiktoken", checkpoint=tmp_path)
    text = str(info.value)
    assert "explicit setting" in text and "cache" in text and "quicktok" in text
    assert vocab.SHA256 in text
