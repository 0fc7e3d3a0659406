"""Shared by the constrained-decoding tests: the llguidance tokenizer (built once per run), a
random-logits stand-in for a model, and one loop that samples completions under the masks.

The stand-in draws fresh random logits every token and favours single-character tokens
(punctuation, digits) and special tokens, so that strings and messages end within tens of
tokens instead of thousands: only the mask keeps its output valid, and a hole in a grammar shows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import llguidance
import torch

from codexpc.constrain import Constraint, SequenceMatcher, load_tokenizer
from codexpc.engine.api import SamplingParams
from codexpc.engine.sampling import constraint_bitmask, sample_rows

VOCAB = 201088  # gpt-oss's logits width (TINY has the same vocabulary)
T1 = SamplingParams(temperature=1.0)


@functools.cache
def tokenizer() -> llguidance.LLTokenizer:
    return load_tokenizer(VOCAB)


POOL = 16  # random logit rows drawn once; each step picks among them (the draw is the sampler's)


@functools.cache
def _pool(seed: int = 1) -> torch.Tensor:
    tk = tokenizer()
    logits = torch.randn(POOL, VOCAB, generator=torch.Generator().manual_seed(seed))
    single = [i for i in range(2000) if len(tk.decode_bytes([i])) == 1]
    structural = [i for i in single if tk.decode_bytes([i]) in (b'"', b"{", b"}", b"[", b"]", b",", b":")]
    logits[:, single] += 6.0  # short tokens: keys, numbers and escapes stay short
    logits[:, structural] += 6.0  # strings, objects and arrays close
    logits[:, 199998:200013] += 6.0  # Harmony's header tokens as likely as a character
    logits[:, [200002, 200007, 200012]] += 8.0  # <|return|>, <|end|>, <|call|>: messages end
    return logits


def random_logits_model(rows: int, generator: torch.Generator) -> torch.Tensor:
    """RANDOM-LOGITS TEST DOUBLE for a model: [rows, V] float32, a random pool row each."""
    return _pool()[torch.randint(POOL, (rows,), generator=generator)]


def sample_completions(constraint: Constraint, n: int, max_tokens: int, seed: int = 0, batch: int = 25,
                       model: Callable[[int, torch.Generator], torch.Tensor] = random_logits_model,
                       stop: frozenset[int] = frozenset({200002, 200012})) -> list[list[int]]:
    """`n` completions sampled at temperature 1 through the engine's masked sampler, `batch`
    rows a step (the masks of a step are filled in parallel, as in the engine)."""
    generator = torch.Generator().manual_seed(seed)
    done: list[list[int]] = []
    while len(done) < n:
        rows = min(batch, n - len(done))
        matchers: list[SequenceMatcher] = [constraint.start() for _ in range(rows)]
        outputs: list[list[int]] = [[] for _ in range(rows)]
        live = list(range(rows))
        for _ in range(max_tokens):
            bitmask = constraint_bitmask([matchers[i] for i in live], VOCAB)
            uniforms = [float(torch.rand((), generator=generator, dtype=torch.float64)) for _ in live]
            tokens = sample_rows(model(len(live), generator), [T1] * len(live), uniforms, bitmask).tolist()
            for i, token in zip(live, tokens, strict=True):
                assert matchers[i].consume(token), matchers[i].error
                outputs[i].append(token)
            live = [i for i in live if outputs[i][-1] not in stop]
            if not live:
                break
        done += outputs
    return done
