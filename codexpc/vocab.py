"""The o200k vocabulary that openai-harmony needs, found offline and checked by SHA-256.

openai-harmony downloads `o200k_base.tiktoken` unless TIKTOKEN_ENCODINGS_BASE names a folder
holding it. codexpc never lets it download: it resolves the file from local sources, in order,
and checks each candidate against the genuine file's digest:

1. an explicit setting (CODEXPC_VOCAB or `vocab` in the config): the file or its folder;
2. codexpc's own cache folder (filled by whichever source worked last time);
3. the tokenizer of the checkpoint in use: `tokenizer.json` (Hugging Face layout) or the
   tokenizer section of a Metal `model.bin`;
4. the registry package `quicktok-v1`, installed by codexpc's own setup.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from codexpc import settings
from codexpc.errors import VocabularyError

log = logging.getLogger(__name__)

FILENAME = "o200k_base.tiktoken"
SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
N_RANKS = 199998  # ordinary (non-special) tokens of o200k


@dataclass(frozen=True)
class Attempt:
    source: str
    problem: str


def tiktoken_bytes(tokens: Iterable[bytes]) -> bytes:
    """Serialise tokens given in rank order as a .tiktoken file ("base64 rank" per line)."""
    return "".join(
        f"{base64.b64encode(tok).decode()} {rank}\n" for rank, tok in enumerate(tokens)
    ).encode()


def _check(data: bytes) -> str | None:
    digest = hashlib.sha256(data).hexdigest()
    return None if digest == SHA256 else f"SHA-256 {digest[:16]}… is not the genuine file's {SHA256[:16]}…"


# --- sources -------------------------------------------------------------------------------


def from_file(path: Path) -> bytes:
    if path.is_dir():
        path = path / FILENAME
    return path.read_bytes()


def _byte_decoder() -> dict[str, int]:
    """Invert GPT-2's byte-to-unicode table, which tokenizer.json's byte-level BPE uses."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def from_tokenizer_json(path: Path) -> bytes:
    """Rebuild the ranks from a Hugging Face `tokenizer.json` (BPE vocab: token string -> id)."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    vocab: dict[str, int] = spec["model"]["vocab"]
    decode = _byte_decoder()
    tokens: list[bytes | None] = [None] * N_RANKS
    for text, rank in vocab.items():
        if rank < N_RANKS:
            tokens[rank] = bytes(decode[ch] for ch in text)
    missing = sum(1 for t in tokens if t is None)
    if missing:
        raise ValueError(f"{missing} of {N_RANKS} ranks missing from {path}")
    return tiktoken_bytes(t for t in tokens if t is not None)


def from_quicktok() -> bytes:
    """The PyPI package quicktok-v1 ships o200k as: u32 count, then per token u16 len, bytes, u32 rank."""
    import quicktok  # type: ignore[import-not-found]

    data = (Path(quicktok.__file__).parent / "data" / "o200k.vocab").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset = 4
    tokens: list[bytes | None] = [None] * count
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2
        token = data[offset : offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", data, offset)
        offset += 4
        tokens[rank] = token
    if offset != len(data) or any(t is None for t in tokens):
        raise ValueError("o200k.vocab in quicktok is not in the expected format")
    return tiktoken_bytes(t for t in tokens if t is not None)


def checkpoint_sources(checkpoint: Path) -> list[tuple[str, Callable[[], bytes]]]:
    """The tokenizer files a checkpoint may hold, whatever its layout."""
    root = checkpoint if checkpoint.is_dir() else checkpoint.parent
    found: list[tuple[str, Callable[[], bytes]]] = []
    for folder in (root, root.parent):  # `original/` and `metal/` sit beside the HF root
        candidate = folder / "tokenizer.json"
        if candidate.is_file():
            found.append((f"checkpoint tokenizer {candidate}", functools.partial(from_tokenizer_json, candidate)))
            break
    metal_files = [checkpoint] if checkpoint.is_file() else [root / "model.bin", root / "metal" / "model.bin"]
    for candidate in metal_files:
        if candidate.is_file() and candidate.suffix == ".bin":
            found.append((f"metal model.bin tokenizer {candidate}", functools.partial(_from_metal, candidate)))
    return found


def _from_metal(path: Path) -> bytes:
    from codexpc.checkpoint.metal import read_vocab_ranks

    return tiktoken_bytes(read_vocab_ranks(path))


# --- resolution ----------------------------------------------------------------------------


def cache_folder() -> Path:
    return settings.cache_dir() / "tiktoken"


def _write_cache(data: bytes) -> Path:
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".o200k-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, folder / FILENAME)  # atomic: a concurrent reader sees the old or the new file
    return folder


def resolve(explicit: Path | None = None, checkpoint: Path | None = None) -> Path:
    """Return a folder holding a verified o200k_base.tiktoken, or raise naming every source tried."""
    if explicit is None and settings.env(settings.ENV_VOCAB):
        explicit = Path(settings.env(settings.ENV_VOCAB) or "")
    cached = cache_folder() / FILENAME
    sources: list[tuple[str, Callable[[], bytes]]] = []
    if explicit is not None:
        sources.append((f"explicit setting {explicit}", lambda: from_file(explicit)))
    sources.append((f"cache {cached}", lambda: cached.read_bytes()))
    if checkpoint is not None:
        sources.extend(checkpoint_sources(checkpoint))
    sources.append(("package quicktok-v1", from_quicktok))

    attempts: list[Attempt] = []
    for name, read in sources:
        try:
            data = read()
        except FileNotFoundError as exc:
            attempts.append(Attempt(name, f"not found ({exc.filename or exc})"))
            continue
        except ImportError:
            attempts.append(Attempt(name, "not installed"))
            continue
        except (OSError, ValueError, KeyError, struct.error) as exc:
            attempts.append(Attempt(name, f"unreadable: {exc}"))
            continue
        problem = _check(data)
        if problem:
            attempts.append(Attempt(name, problem))
            log.warning("vocabulary source %s rejected: %s", name, problem)
            continue
        if name.startswith("cache "):
            return cache_folder()
        folder = _write_cache(data)
        log.info("vocabulary taken from %s, cached in %s", name, folder)
        return folder
    lines = "\n".join(f"  - {a.source}: {a.problem}" for a in attempts)
    raise VocabularyError(
        f"no offline source of {FILENAME} worked (codexpc never downloads it):\n{lines}\n"
        f"Fix: install codexpc's dependencies (quicktok-v1), or set {settings.ENV_VOCAB} to a "
        f"genuine {FILENAME} (SHA-256 {SHA256})."
    )


def status(checkpoint: Path | None = None) -> str:
    """One line for `codexpc checkpoint inspect` and `health`: where the vocabulary comes from."""
    try:
        return f"ok ({resolve(checkpoint=checkpoint) / FILENAME})"
    except VocabularyError as exc:
        return f"unavailable: {exc}"
