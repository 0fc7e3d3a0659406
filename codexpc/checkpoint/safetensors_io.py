"""A streaming safetensors reader and writer, strict about the header.

Reading checks the whole header before any tensor is touched: bounded header size, known dtypes,
offsets that match each shape and lie inside the file. Tensors come back as views of a private
memory map, so a caller can copy each one to its device with no second full copy in host memory.
Writing declares every tensor up front, then streams them one by one.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codexpc.checkpoint.tensors import ST_DTYPES, TensorSpec
from codexpc.errors import CheckpointError

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 2**20  # a real 120b header is about 100 KB; bound what a file can make us parse


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file, with absolute byte offsets."""

    file: Path
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


def _entry(path: Path, name: str, raw: object, base: int, file_size: int) -> Entry:
    if not isinstance(raw, dict):
        raise _fail(path, f"tensor {name!r} has a malformed header entry")
    dtype, shape, offsets = raw.get("dtype"), raw.get("shape"), raw.get("data_offsets")
    if dtype not in ST_DTYPES:
        raise _fail(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _fail(path, f"tensor {name!r} has a malformed shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _fail(path, f"tensor {name!r} has malformed data_offsets {offsets!r}")
    begin, end = offsets
    expected = math.prod(shape) * ST_DTYPES[dtype].itemsize
    if begin < 0 or end - begin != expected:
        raise _fail(
            path, f"tensor {name!r}: data_offsets {offsets} do not hold {dtype} {shape} ({expected} bytes)"
        )
    if base + end > file_size:
        raise _fail(
            path, f"truncated: tensor {name!r} ends at byte {base + end} but the file has {file_size} bytes"
        )
    return Entry(path, name, str(dtype), tuple(shape), base + begin, base + end)


def read_header(path: Path) -> dict[str, Entry]:
    """Parse and check a safetensors header; raise CheckpointError naming the file and the problem."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _fail(path, f"not a safetensors file: only {size} bytes")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise _fail(path, f"header of {length} bytes exceeds the {MAX_HEADER_BYTES}-byte bound")
            if 8 + length > size:
                raise _fail(path, f"truncated: header of {length} bytes but the file has {size} bytes")
            raw = f.read(length)
    except FileNotFoundError:
        raise _fail(path, "missing file") from None
    except OSError as exc:
        raise _fail(path, f"unreadable: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"header is not valid JSON ({exc})") from None
    except RecursionError:  # json's parser recurses per nesting level; a hostile header nests deep
        raise _fail(path, "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    header.pop("__metadata__", None)
    entries = {name: _entry(path, name, value, 8 + length, size) for name, value in header.items()}
    ordered = sorted(entries.values(), key=lambda e: e.start)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise _fail(path, f"tensors {before.name!r} and {after.name!r} overlap")
    return entries


def check_entry(entry: Entry, spec: TensorSpec) -> None:
    """Refuse a tensor whose shape or dtype differs from what the config implies."""
    if entry.shape != spec.shape:
        raise _fail(
            entry.file, f"tensor {entry.name!r} has shape {list(entry.shape)}, expected {list(spec.shape)}"
        )
    if entry.dtype != spec.st_dtype:
        raise _fail(entry.file, f"tensor {entry.name!r} has dtype {entry.dtype}, expected {spec.st_dtype}")


class MappedFile:
    """A memory map of a weights file; tensors are views of it, alive as long as they are.

    The map is private and writable (copy-on-write: nothing ever reaches the file), so an in-place
    op on a view cannot crash. Where the kernel refuses to commit that much (a file larger than
    memory under strict overcommit), the map is read-only: then views must not be modified.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writable = True
        with path.open("rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            except OSError as exc:
                log.warning("%s: read-only map (%s); loaded tensors must not be modified in place", path, exc)
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                self.writable = False

    def view(self, dtype: torch.dtype, shape: tuple[int, ...], offset: int) -> torch.Tensor:
        count = math.prod(shape)
        if count == 0:
            return torch.empty(shape, dtype=dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="The given buffer is not writable"
            )  # read-only fallback
            return torch.frombuffer(self._map, dtype=dtype, count=count, offset=offset).view(shape)

    def tensor(self, entry: Entry) -> torch.Tensor:
        return self.view(ST_DTYPES[entry.dtype], entry.shape, entry.start)

    def raw(self, offset: int, size: int) -> bytes:
        return self._map[offset : offset + size]


# --- writing -------------------------------------------------------------------------------


def _header_bytes(specs: list[TensorSpec]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": spec.st_dtype,
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep tensor data 8-byte aligned, as the safetensors library does
    return struct.pack("<Q", len(raw)) + raw


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a contiguous CPU tensor, without a copy."""
    flat = tensor.detach().contiguous().reshape(-1)
    array: Any = flat.view(torch.uint8).numpy()
    return memoryview(array).cast("B")


def write_safetensors(
    path: Path, specs: list[TensorSpec], tensors: Iterable[tuple[str, torch.Tensor]]
) -> int:
    """Write `tensors` (in the order of `specs`, each matching its spec) to `path`; return bytes written."""
    written = 0
    with path.open("wb") as f:
        written += f.write(_header_bytes(specs))
        pending = iter(specs)
        for name, tensor in tensors:
            spec = next(pending, None)
            assert spec is not None and spec.name == name, f"{name} written out of order"
            assert tuple(tensor.shape) == spec.shape and tensor.dtype == spec.dtype, (
                f"{name}: {tensor.shape} {tensor.dtype}"
            )
            written += f.write(tensor_bytes(tensor))
        assert next(pending, None) is None, f"{path}: fewer tensors than declared"
    return written


class MapCache:
    """One map per file for all of a checkpoint's tensors, opened on first use."""

    def __init__(self) -> None:
        self._maps: dict[Path, MappedFile] = {}

    def get(self, path: Path) -> MappedFile:
        if path not in self._maps:
            self._maps[path] = MappedFile(path)
        return self._maps[path]
