"""`codexpc checkpoint write|inspect`: synthetic checkpoints for tests, and a look inside real ones."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from codexpc import vocab
from codexpc.cli.output import add_json_flag, emit_json, say
from codexpc.errors import CheckpointError

SIZES = ("tiny", "20b", "120b")
LAYOUTS = ("original", "hf", "metal")


def register(commands: Any) -> None:
    p = commands.add_parser(
        "checkpoint",
        help="write a synthetic checkpoint, or inspect one",
        description="Write random-weight checkpoints in the real on-disk layouts (for tests and "
        "benchmarks), or check a checkpoint before serving it.",
    )
    sub = p.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)
    w = sub.add_parser(
        "write",
        help="write a random-weight checkpoint",
        description="Random weights in gpt-oss's exact shapes and file layout. tiny takes seconds and "
        "about 50 MB (most of it the 201k-token vocabulary's embeddings); 20b is about 13 GiB and 120b "
        "about 65 GiB of disk. A folder that is not empty is refused unless --force.",
    )
    w.add_argument("--size", choices=SIZES, default="tiny", help="the model's shapes (default tiny)")
    w.add_argument("--layout", choices=LAYOUTS, default="original",
                   help="the on-disk layout of the published repositories (default original)")
    w.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write")
    w.add_argument("--seed", type=int, default=0, help="the random weights' seed (default 0)")
    w.add_argument("--force", action="store_true",
                   help="overwrite the checkpoint files in a folder that is not empty")
    add_json_flag(w)
    w.set_defaults(run=run_write)
    i = sub.add_parser(
        "inspect",
        help="show a checkpoint's layout, shapes, size and vocabulary",
        description="Validate a checkpoint (every header, no tensor data) and print what it holds.",
    )
    i.add_argument("path", type=Path, metavar="PATH", help="a checkpoint folder, or a Metal model.bin")
    add_json_flag(i)
    i.set_defaults(run=run_inspect)


def describe(path: Path) -> dict[str, Any]:
    """What `inspect` prints; raises CheckpointError for anything unreadable."""
    from codexpc import checkpoint

    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    info = dict(checkpoint.describe(path))
    info.setdefault("vocabulary", vocab.status(checkpoint=path))
    return info


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _lines(info: dict[str, Any]) -> list[str]:
    c = info["config"]
    files = info.get("files", [])
    lines = [
        f"checkpoint  {info['path']} ({info['layout']} layout)",
        f"files       {len(files)} file(s), {_size(info.get('file_bytes', 0))}: {', '.join(files[:3])}"
        + (" …" if len(files) > 3 else ""),
        f"model       {c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_attention_heads']} q / "
        f"{c['num_key_value_heads']} kv heads of {c['head_dim']}, {c['num_experts']} experts (top "
        f"{c['experts_per_token']}), vocabulary {c['vocab_size']}, context {c['context_length']}",
        f"parameters  {info.get('parameters', 0) / 1e6:,.1f} M in {info.get('tensors')} tensors "
        f"({', '.join(info.get('dtypes', []))})",
        f"shapes      (layer 0 of {c['num_hidden_layers']})",
    ]
    shapes: dict[str, list[int]] = info.get("shapes", {})
    lines += [f"  {name:<36} {shape}" for name, shape in shapes.items()]
    lines.append(f"vocabulary  {info['vocabulary']}")
    lines += [f"note        {note}" for note in info.get("notes", [])]
    return lines


def run_inspect(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:
        emit_json({"ok": True, **info})
        return 0
    for line in _lines(info):
        say(line)
    return 0


def write(size: str, layout: str, out: Path, seed: int = 0, force: bool = False) -> Path:
    from codexpc.checkpoint import write_from_size

    return write_from_size(size, layout, out, seed=seed, force=force)


def run_write(args: argparse.Namespace) -> int:
    path = write(args.size, args.layout, args.out, args.seed, args.force)
    if args.json:
        emit_json({"ok": True, "path": str(path), "size": args.size, "layout": args.layout})
    else:
        say(f"wrote a random {args.size} checkpoint ({args.layout} layout) to {path}")
        say(f"serve it: codexpc serve --checkpoint {path}")
    return 0
