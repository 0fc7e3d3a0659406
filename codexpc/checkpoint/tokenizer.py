"""The o200k Harmony tokenizer as checkpoints carry it: tokenizer.json, and Metal's token table.

Both are built from the verified o200k vocabulary (codexpc.vocab.resolve(), never the network).
tokenizer.json is a byte-level BPE whose merges are derived from the ranks: a token of rank r
is the merge of any split into two tokens of lower rank, and merges are ordered by r, which is
exactly tiktoken's rule of merging the lowest-ranked pair first.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

from codexpc import vocab
from codexpc.engine.model_config import ModelConfig

# o200k's pre-tokenisation regex (tiktoken's o200k_base pat_str), also stored in Metal's model.bin
O200K_PATTERN = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)

# The special tokens of the published gpt-oss tokenizer.json (ids 199998..200018).
_NAMED = {
    199998: "<|startoftext|>",
    199999: "<|endoftext|>",
    200002: "<|return|>",
    200003: "<|constrain|>",
    200005: "<|channel|>",
    200006: "<|start|>",
    200007: "<|end|>",
    200008: "<|message|>",
    200012: "<|call|>",
    200018: "<|endofprompt|>",
}
SPECIAL_TOKENS = {i: _NAMED.get(i, f"<|reserved_{i}|>") for i in range(vocab.N_RANKS, 200019)}


@functools.cache
def byte_encoder() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies use."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def ranks() -> list[bytes]:
    """The 199998 ordinary o200k tokens in rank order, from the verified offline vocabulary."""
    folder = vocab.resolve()
    lines = (folder / vocab.FILENAME).read_bytes().splitlines()
    return [base64.b64decode(line.split()[0]) for line in lines if line]


def _text(token: bytes) -> str:
    table = byte_encoder()
    return "".join(table[b] for b in token)


def merges(tokens: list[bytes]) -> list[list[str]]:
    rank = {tok: r for r, tok in enumerate(tokens)}
    result: list[list[str]] = []
    for tok in tokens:  # rank order: a merge's priority is the rank of what it makes
        pairs = [(tok[:i], tok[i:]) for i in range(1, len(tok)) if tok[:i] in rank and tok[i:] in rank]
        pairs.sort(key=lambda p: (rank[p[0]], rank[p[1]]))
        result.extend([_text(a), _text(b)] for a, b in pairs)
    return result


def tokenizer_json(tokens: list[bytes]) -> dict[str, Any]:
    added = [
        {
            "id": i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, name in SPECIAL_TOKENS.items()
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": O200K_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,  # a whole pre-token that is in the vocabulary is one token, as in tiktoken
            "vocab": {_text(tok): r for r, tok in enumerate(tokens)},
            "merges": merges(tokens),
        },
    }


@functools.cache
def _tokenizer_text(vocab_folder: Path) -> str:
    # seconds to build (the merges); built once per process per vocabulary file
    return json.dumps(tokenizer_json(ranks()), ensure_ascii=False)


def write_tokenizer_files(out: Path, config: ModelConfig) -> None:
    """tokenizer.json and tokenizer_config.json, as transformers' PreTrainedTokenizerFast reads them."""
    (out / "tokenizer.json").write_text(_tokenizer_text(vocab.resolve()), encoding="utf-8")
    settings = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|return|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": config.context_length,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
