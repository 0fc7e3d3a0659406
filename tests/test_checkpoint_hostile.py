"""Hostile checkpoint files: every cut and every corrupted header byte is refused with a
CheckpointError (never another exception), and a header that claims a huge size allocates
nothing: what was read is measured with tracemalloc.

test_checkpoint_validate.py and test_checkpoint_metal.py hold the named refusals (wrong shape,
dtype, offsets, overlap, bad magic, ...); this file sweeps cut points and random corruptions.
"""

from __future__ import annotations

import json
import random
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from codexpc.checkpoint import metal_format as fmt
from codexpc.checkpoint import open_checkpoint, write_checkpoint
from codexpc.engine.model_config import TINY
from codexpc.errors import CheckpointError

# open_checkpoint reads headers only; a refused file must not make it read much more.
READ_BOUND = 4 * 2**20
CORRUPTIONS = 100


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    return {layout: write_checkpoint(TINY, layout, root / layout, seed=3) for layout in ("original", "metal")}


def weights_file(checkpoint: Path) -> Path:
    return checkpoint / "model.safetensors" if checkpoint.is_dir() else checkpoint


@contextmanager
def peak_allocation() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak bytes Python allocated inside it."""
    result: list[int] = []
    tracemalloc.start()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def refused_or_opened(path: Path) -> str:
    """open_checkpoint's verdict; anything but a CheckpointError escapes and fails the test."""
    try:
        open_checkpoint(path)
    except CheckpointError as exc:
        return f"refused: {exc}"
    return "opened"


def with_weights(pristine: Path, tmp_path: Path, head: bytes, size: int | None = None) -> Path:
    """A copy of the checkpoint whose weights file starts with `head` and is `size` bytes long.

    Past `head` the file is a hole (zeros, no disk): opening reads headers, never the tensors,
    and writing 50 MB per case would make the sweep slow.
    """
    folder = tmp_path / "ckpt"
    if pristine.is_dir() and not folder.exists():
        folder.mkdir()
        for item in pristine.iterdir():
            if item.name != "model.safetensors":
                (folder / item.name).write_bytes(item.read_bytes())
    path = folder / "model.safetensors" if pristine.is_dir() else tmp_path / pristine.name
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) if size is None else size)
    return folder if pristine.is_dir() else path


def header_end(data: bytes, layout: str) -> int:
    """Where the headers end: what a corruption targets and what the copies keep."""
    if layout == "original":
        return 8 + struct.unpack("<Q", data[:8])[0]
    # Metal: magic, UUIDs, model and tokenizer headers, then the tokenizer itself (read on open).
    return min(len(data), 8 * 2**20)


@pytest.mark.parametrize("layout", ["original", "metal"])
def test_every_cut_is_refused_reading_no_more_than_the_headers(pristine: dict[str, Path], tmp_path: Path,
                                                               layout: str) -> None:
    data = weights_file(pristine[layout]).read_bytes()
    end = header_end(data, layout)
    cuts = sorted({0, 1, 7, 8, 9, 16, 31, 32, 100, end - 1, end, end + 1, len(data) // 2, len(data) - 1})
    for cut in cuts:
        path = with_weights(pristine[layout], tmp_path, data[:cut])  # no hole: the file ends there
        with peak_allocation() as peak:
            verdict = refused_or_opened(path)
        assert verdict.startswith("refused: "), (cut, verdict)
        assert peak[0] < READ_BOUND, (cut, peak[0])


@pytest.mark.parametrize("layout", ["original", "metal"])
def test_random_header_corruptions_are_refused_or_harmless(pristine: dict[str, Path], tmp_path: Path,
                                                           layout: str) -> None:
    data = weights_file(pristine[layout]).read_bytes()
    end = header_end(data, layout)
    # The fixed headers: the safetensors JSON, or Metal's magic, UUIDs, model and tokenizer headers.
    target = end if layout == "original" else fmt.PREFIX_BYTES
    rng = random.Random(layout)
    verdicts: dict[str, int] = {}
    for _ in range(CORRUPTIONS):
        corrupted = bytearray(data[:end])
        for _ in range(rng.randint(1, 4)):
            corrupted[rng.randrange(target)] = rng.randrange(256)
        verdict = refused_or_opened(with_weights(pristine[layout], tmp_path, bytes(corrupted[:end]), len(data)))
        kind = "opened" if verdict == "opened" else "refused"
        verdicts[kind] = verdicts.get(kind, 0) + 1
    print(f"{layout}: {CORRUPTIONS} corrupted headers: {verdicts}")
    assert verdicts.get("refused", 0) > CORRUPTIONS // 2, verdicts


@pytest.mark.parametrize("claimed", [2**64 - 1, 2**63, 2**40, 90 * 2**20])
def test_a_header_claiming_a_huge_length_allocates_nothing(pristine: dict[str, Path], tmp_path: Path,
                                                           claimed: int) -> None:
    data = weights_file(pristine["original"]).read_bytes()
    end = header_end(data, "original")
    path = with_weights(pristine["original"], tmp_path, struct.pack("<Q", claimed) + data[8:end], len(data))
    with peak_allocation() as peak:
        verdict = refused_or_opened(path)
    assert verdict.startswith("refused: ") and ("exceeds" in verdict or "truncated" in verdict), verdict
    assert peak[0] < READ_BOUND


def _edit_entry(edit: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        length = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8 : 8 + length])
        edit(header)
        raw = json.dumps(header, separators=(",", ":")).encode()
        return struct.pack("<Q", len(raw)) + raw + data[8 + length :]

    return apply


def _replace_entry(value: object) -> Callable[[dict[str, Any]], None]:
    return lambda header: header.__setitem__("norm.scale", value)


@pytest.mark.parametrize(("name", "edit"), [
    ("negative dimension", _edit_entry(lambda h: h["norm.scale"].update(shape=[-64]))),
    ("dimensions whose product overflows 64 bits",
     _edit_entry(lambda h: h["norm.scale"].update(shape=[2**62, 2**62]))),
    ("float dimension", _edit_entry(lambda h: h["norm.scale"].update(shape=[64.0]))),
    ("unknown dtype", _edit_entry(lambda h: h["norm.scale"].update(dtype="F128"))),
    ("entry that is not an object", _edit_entry(_replace_entry(5))),
    ("float offsets", _edit_entry(lambda h: h["norm.scale"].update(data_offsets=[0.0, 128.0]))),
    ("offsets past the end", _edit_entry(lambda h: h["norm.scale"].update(data_offsets=[2**40, 2**40 + 128]))),
])
def test_hostile_header_entries_are_refused(pristine: dict[str, Path], tmp_path: Path, name: str,
                                            edit: Callable[[bytes], bytes]) -> None:
    data = weights_file(pristine["original"]).read_bytes()
    with peak_allocation() as peak:
        end = header_end(data, "original")
        head = edit(data[:end])
        size = len(data) - end + len(head)  # the tensors' bytes keep their places after the header
        verdict = refused_or_opened(with_weights(pristine["original"], tmp_path, head, size))
    assert verdict.startswith("refused: ") and "norm.scale" in verdict, (name, verdict)
    assert peak[0] < READ_BOUND


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("target", ["safetensors header", "config.json", "dtypes.json"])
def test_deeply_nested_json_is_a_checkpoint_error(pristine: dict[str, Path], tmp_path: Path, target: str) -> None:
    data = weights_file(pristine["original"]).read_bytes()
    if target == "safetensors header":
        folder = with_weights(pristine["original"], tmp_path, struct.pack("<Q", len(DEEP)) + DEEP)
    else:
        folder = with_weights(pristine["original"], tmp_path, data[: header_end(data, "original")], len(data))
        (folder / target).write_bytes(DEEP)
    assert refused_or_opened(folder).startswith("refused: ")
