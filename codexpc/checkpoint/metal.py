"""Metal's single-file model.bin: read it into canonical tensors, write it from them.

The file differs from the canonical tensors in four ways, each undone on reading:
- the vocabulary stops after the Harmony specials (200014 rows of embedding and unembedding);
- q and k rows are permuted from half-split to interleaved RoPE pairs, and scaled by 0.5 and
  2/sqrt(head_dim) (the softmax scale folded in; 0.5 and 0.25 at head_dim 64, as upstream);
- MXFP4 exponents are stored +14;
- experts are grouped expert by expert, each layer's group page-aligned.
The header keeps YaRN only as derived numbers; reading assumes gpt-oss's ntk_alpha = 1 to
recover the initial context length and ntk_beta.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from pathlib import Path

import torch

from codexpc.checkpoint import metal_format as fmt
from codexpc.checkpoint import validate
from codexpc.checkpoint.base import Checkpoint, TensorSource
from codexpc.checkpoint.safetensors_io import MappedFile, tensor_bytes
from codexpc.checkpoint.tensors import TensorSpec
from codexpc.checkpoint.tokenizer import O200K_PATTERN, ranks
from codexpc.engine.model_config import ModelConfig
from codexpc.errors import CheckpointError

MAX_SPECIAL = 4096
MAX_TEXT_TOKENS = 1 << 20
MAX_TOKENIZER_BYTES = 256 * 2**20


# --- header --------------------------------------------------------------------------------


def _read_prefix(path: Path) -> tuple[bytes, int]:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(fmt.PREFIX_BYTES)
    except FileNotFoundError:
        raise validate.fail(path, "missing file") from None
    except OSError as exc:
        raise validate.fail(path, f"unreadable: {exc.strerror or exc}") from None
    if len(prefix) < fmt.PREFIX_BYTES:
        raise validate.fail(path, f"truncated: {size} bytes is shorter than the headers")
    return prefix, size


def _expect(path: Path, found: bytes, wanted: bytes, what: str) -> None:
    if found != wanted:
        raise validate.fail(path, f"bad {what}: {found.hex()} (expected {wanted.hex()})")


def _short(value: float) -> float:
    # the header holds float32s: 6 significant digits undo their rounding of short decimals
    return float(f"{value:.6g}")


def _yarn(path: Path, h: fmt.ModelHeader) -> tuple[int, float]:
    """(initial context length, ntk_beta) from the header's derived YaRN numbers, with ntk_alpha = 1."""
    try:
        half, log_theta = h.head_dim / 2, math.log(h.rope_theta)
        low, high = -h.yarn_offset / h.yarn_scale, (1 - h.yarn_offset) / h.yarn_scale
        # high = half * log(L / 2pi) / log(theta) gives L; low = half * log(L / (beta 2pi)) / log(theta) gives beta
        initial = 2 * math.pi * math.exp(high * log_theta / half)
        beta = initial / (2 * math.pi * math.exp(low * log_theta / half))
        return round(initial), _short(beta)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise validate.fail(path, "model header has impossible RoPE fields") from None


def _config(path: Path, h: fmt.ModelHeader, vocab_size: int) -> ModelConfig:
    if not h.interpolation_scale > 0:
        raise validate.fail(path, "model header has impossible RoPE fields")
    initial, beta = _yarn(path, h)
    fields = {
        "num_hidden_layers": h.num_blocks,
        "num_experts": h.num_experts,
        "experts_per_token": h.num_active_experts,
        "vocab_size": vocab_size,
        "hidden_size": h.embedding_dim,
        "intermediate_size": h.mlp_dim,
        "swiglu_limit": _short(h.swiglu_limit),
        "head_dim": h.head_dim,
        "num_attention_heads": h.num_heads,
        "num_key_value_heads": h.num_kv_heads,
        "sliding_window": h.attention_window,
        "initial_context_length": initial,
        "rope_theta": _short(h.rope_theta),
        "rope_scaling_factor": _short(1 / h.interpolation_scale),
        "rope_ntk_alpha": 1.0,
        "rope_ntk_beta": beta,
        "rms_norm_eps": _short(h.rmsnorm_epsilon),
        "context_length": h.context_length,
    }
    return validate.build_config(path, fields)


def _parse(path: Path) -> tuple[ModelConfig, int, int, int]:
    """(config, text tokens, tokenizer end offset, file size) from the headers alone."""
    prefix, size = _read_prefix(path)
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        at += n
        return prefix[at - n : at]

    _expect(path, take(16), fmt.MAGIC, "magic")
    _expect(path, take(16), fmt.MODEL_UUID, "model UUID")
    header = fmt.ModelHeader._make(fmt.MODEL_HEADER.unpack(take(fmt.MODEL_HEADER.size)))
    _expect(path, take(16), fmt.LAYOUT_UUID, "layout UUID")
    _expect(path, take(16), fmt.TOKENIZER_UUID, "tokenizer UUID")
    n_special, n_text, regex_size, tokens_size = fmt.TOKENIZER_HEADER.unpack(take(fmt.TOKENIZER_HEADER.size))
    if n_special > MAX_SPECIAL or n_text > MAX_TEXT_TOKENS or regex_size + tokens_size > MAX_TOKENIZER_BYTES:
        raise validate.fail(
            path, f"tokenizer header out of bounds ({n_special} special, {n_text} text tokens)"
        )
    end = fmt.PREFIX_BYTES + 16 * n_special + regex_size + tokens_size
    if end > size:
        raise validate.fail(
            path, f"truncated: the tokenizer ends at byte {end} but the file has {size} bytes"
        )
    return _config(path, header, n_special + n_text), n_text, end, size


# --- reading -------------------------------------------------------------------------------


def read_vocab_ranks(path: Path) -> list[bytes]:
    """The ordinary tokens of the file's tokenizer, in rank order (199998 for o200k)."""
    _, n_text, _, _ = _parse(path)
    with path.open("rb") as f:
        f.seek(fmt.PREFIX_BYTES - fmt.TOKENIZER_HEADER.size)
        n_special, _, regex_size, tokens_size = fmt.TOKENIZER_HEADER.unpack(f.read(fmt.TOKENIZER_HEADER.size))
        f.seek(16 * n_special + regex_size, 1)  # past the special tokens' UUIDs and the regex
        body = f.read(tokens_size)
    tokens, at = [], 0
    for _ in range(n_text):
        if at + 2 > len(body):
            raise CheckpointError(f"{path}: tokenizer token table is shorter than its {n_text} tokens")
        (length,) = struct.unpack_from("<H", body, at)
        tokens.append(body[at + 2 : at + 2 + length])
        at += 2 + length
    if at != len(body) or any(len(t) == 0 for t in tokens):
        raise CheckpointError(f"{path}: tokenizer token table does not match its header")
    return tokens


def _qkv_scales(config: ModelConfig) -> tuple[float, float]:
    # Metal folds 1/sqrt(head_dim) into q (x0.5) and k (x2/sqrt(head_dim)): exact for powers of 4
    return 0.5, 2.0 / math.sqrt(config.head_dim)


def to_metal_qkv(config: ModelConfig, t: torch.Tensor) -> torch.Tensor:
    """Canonical qkv rows (weight [rows, H] or bias [rows]) -> Metal's: interleaved RoPE pairs, scaled."""
    n_qk, d = config.num_attention_heads + config.num_key_value_heads, config.head_dim
    qk, v = t[: n_qk * d], t[n_qk * d :]
    qk = qk.reshape(n_qk, 2, d // 2, -1).transpose(1, 2).reshape(n_qk, d, -1)
    sq, sk = _qkv_scales(config)
    q, k = qk[: config.num_attention_heads] * sq, qk[config.num_attention_heads :] * sk
    return torch.cat((q.reshape(-1, *t.shape[1:]), k.reshape(-1, *t.shape[1:]), v)).reshape(t.shape)


def from_metal_qkv(config: ModelConfig, t: torch.Tensor) -> torch.Tensor:
    n_qk, d = config.num_attention_heads + config.num_key_value_heads, config.head_dim
    sq, sk = _qkv_scales(config)
    qk, v = t[: n_qk * d].reshape(n_qk, d, -1), t[n_qk * d :]
    q, k = qk[: config.num_attention_heads] / sq, qk[config.num_attention_heads :] / sk
    qk = torch.cat((q, k)).reshape(n_qk, d // 2, 2, -1).transpose(1, 2)
    return torch.cat((qk.reshape(-1, *t.shape[1:]), v)).reshape(t.shape)


def _reader(config: ModelConfig, mapped: MappedFile, place: fmt.Placement):
    spec = place.spec

    def read() -> torch.Tensor:
        if place.count == 1:
            tensor = mapped.view(spec.dtype, spec.shape, place.offset)
        else:  # one piece per expert, `stride` bytes apart
            piece = spec.nbytes // place.count
            raw = mapped.view(torch.uint8, (place.end - place.offset,), place.offset)
            rows = raw.as_strided((place.count, piece), (place.stride, 1))
            # one contiguous copy of this tensor: what `.to(device)` would make of a strided view anyway
            tensor = rows.view(spec.dtype).reshape(spec.shape).contiguous()
        if spec.name.endswith("attn.qkv.weight") or spec.name.endswith("attn.qkv.bias"):
            return from_metal_qkv(config, tensor)
        if spec.name.endswith(".scales"):
            return tensor - fmt.UE8_OFFSET
        return tensor

    return read


def open_metal(path: Path) -> Checkpoint:
    config, _, tokenizer_end, size = _parse(path)
    placements = fmt.plan(config, fmt.align(tokenizer_end, fmt.PAGE))
    end = max(p.end for p in placements)
    if end > size:
        raise validate.fail(path, f"truncated: weights end at byte {end} but the file has {size} bytes")
    mapped = MappedFile(path)
    sources = tuple(
        TensorSource(p.spec.name, path, p.spec.nbytes, _reader(config, mapped, p)) for p in placements
    )
    order = {name: i for i, name in enumerate(_canonical_order(config))}
    sources = tuple(sorted(sources, key=lambda s: order[s.name]))
    notes = (f"vocabulary of {config.vocab_size} (Metal drops the reserved tail of 201088)",)
    return Checkpoint(path, "metal", config, (path,), sources, notes)


def _canonical_order(config: ModelConfig) -> list[str]:
    from codexpc.checkpoint.tensors import canonical_specs

    return [s.name for s in canonical_specs(config)]


# --- writing -------------------------------------------------------------------------------


def metal_config(config: ModelConfig) -> ModelConfig:
    """The config a model.bin written from `config` holds: the vocabulary ends after the specials."""
    from dataclasses import replace

    return replace(config, vocab_size=fmt.VOCAB_SIZE)


def _check_writable(config: ModelConfig, out: Path) -> None:
    ks = 2.0 / math.sqrt(config.head_dim)
    if math.log2(ks) != round(math.log2(ks)):
        raise CheckpointError(
            f"{out}: head_dim {config.head_dim} is not a power of 4; Metal's folded q/k scale would be inexact"
        )
    if config.vocab_size < fmt.VOCAB_SIZE:
        raise CheckpointError(
            f"{out}: vocab_size {config.vocab_size} cannot hold the o200k Harmony vocabulary"
        )


def write_metal(config: ModelConfig, tensors: Iterable[tuple[TensorSpec, torch.Tensor]], out: Path) -> Path:
    """Write canonical tensors (any order) as model.bin, each placed by seeking: one tensor in memory."""
    _check_writable(config, out)
    target = metal_config(config)
    tokens = ranks()
    head = fmt.MAGIC + fmt.MODEL_UUID + _model_header(config) + fmt.LAYOUT_UUID
    head += fmt.tokenizer_bytes(target, tokens, O200K_PATTERN)
    placements = {p.spec.name: p for p in fmt.plan(target, fmt.align(len(head), fmt.PAGE))}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        f.write(head)
        for spec, tensor in tensors:
            _write_tensor(f, config, placements.pop(spec.name), tensor)
        assert not placements, f"{out}: tensors not written: {sorted(placements)[:3]}"
        f.truncate(max(p.end for p in fmt.plan(target, fmt.align(len(head), fmt.PAGE))))
    return out


def _model_header(config: ModelConfig) -> bytes:
    interp, offset, scale, mult = fmt.yarn_fields(config)
    header = fmt.ModelHeader(
        context_length=config.context_length,
        num_blocks=config.num_hidden_layers,
        num_experts=config.num_experts,
        num_active_experts=config.experts_per_token,
        embedding_dim=config.hidden_size,
        mlp_dim=config.intermediate_size,
        swiglu_limit=config.swiglu_limit,
        head_dim=config.head_dim,
        num_heads=config.num_attention_heads,
        num_kv_heads=config.num_key_value_heads,
        attention_window=config.sliding_window,
        rope_theta=config.rope_theta,
        interpolation_scale=interp,
        yarn_offset=offset,
        yarn_scale=scale,
        yarn_multiplier=mult,
        rmsnorm_epsilon=config.rms_norm_eps,
    )
    return fmt.MODEL_HEADER.pack(*header)


def _write_tensor(f, config: ModelConfig, place: fmt.Placement, tensor: torch.Tensor) -> None:
    name = place.spec.name
    if name in ("embedding.weight", "unembedding.weight"):
        tensor = tensor[: place.spec.shape[0]]  # the reserved tail of the vocabulary is not kept
    elif name.endswith("attn.qkv.weight") or name.endswith("attn.qkv.bias"):
        tensor = to_metal_qkv(config, tensor)
    elif name.endswith(".scales"):
        tensor = tensor + fmt.UE8_OFFSET
    assert tuple(tensor.shape) == place.spec.shape, f"{name}: {tuple(tensor.shape)} != {place.spec.shape}"
    pieces = tensor.reshape(place.count, -1)
    for i in range(place.count):
        f.seek(place.offset + i * place.stride)
        f.write(tensor_bytes(pieces[i]))
