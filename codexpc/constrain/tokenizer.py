"""llguidance's view of the o200k_harmony vocabulary, built once per vocabulary and model width.

The tokenizer is built from the same verified `o200k_base.tiktoken` that openai-harmony reads
(codexpc/vocab.py resolves it offline), plus Harmony's special tokens by name, so that a grammar
can say `<|start|>` or `<|call|>`. Building it takes ~0.8 s on a 2-core machine (the 200k
ranks go into llguidance's token trie), so it is cached: every request's grammar shares it.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from pathlib import Path

import llguidance

from codexpc import vocab

log = logging.getLogger(__name__)

FIRST_SPECIAL = 199998
# <|endoftext|>: llguidance's "EOS". The turn grammar never accepts it (a turn ends with
# <|return|> or <|call|>, which are in the grammar), so it is never allowed by a mask.
EOS = 199999
# o200k_harmony's named special tokens; the rest of 199998.. are <|reserved_N|>.
SPECIAL_NAMES = {
    199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>", 200003: "<|constrain|>",
    200005: "<|channel|>", 200006: "<|start|>", 200007: "<|end|>", 200008: "<|message|>", 200012: "<|call|>",
}
# o200k's pre-tokenizer split (openai-harmony's, tiktoken's): llguidance uses it only to
# tokenize text itself, e.g. for forced bytes.
PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])


def load_tokenizer(n_vocab: int, explicit: Path | None = None, checkpoint: Path | None = None) -> llguidance.LLTokenizer:
    """The llguidance tokenizer for a model whose logits have `n_vocab` columns (201088 for
    gpt-oss); raises VocabularyError when no offline vocabulary is found."""
    folder = vocab.resolve(explicit=explicit, checkpoint=checkpoint)
    return _build(str(folder / vocab.FILENAME), n_vocab)


@functools.lru_cache(maxsize=4)
def _build(path: str, n_vocab: int) -> llguidance.LLTokenizer:
    start = time.perf_counter()
    ranks: dict[bytes, int] = {}
    for line in Path(path).read_bytes().splitlines():
        token, rank = line.split(b" ")
        ranks[base64.b64decode(token)] = int(rank)
    specials = {SPECIAL_NAMES.get(i, f"<|reserved_{i}|>"): i for i in range(FIRST_SPECIAL, n_vocab)}
    tokenizer = llguidance.LLTokenizer.from_tiktoken(  # type: ignore[attr-defined]  # not in its stub
        encoder=ranks, special_tokens=specials, pattern=PATTERN, eos_token=EOS, n_vocab=n_vocab)
    log.info("llguidance tokenizer built in %.2f s (%d tokens)", time.perf_counter() - start, n_vocab)
    return tokenizer
