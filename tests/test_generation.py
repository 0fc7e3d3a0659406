"""Generation pieces: sampling, the per-sequence KV cache, and KV-cached decoding vs recompute."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from codexpc.engine.api import SamplingParams
from codexpc.engine.model import Transformer
from codexpc.engine.model_config import TINY
from codexpc.engine.sampling import make_generator, sample, sample_rows
from codexpc.engine.sequence_kv import GROWTH_QUANTUM, SequenceKV

# probabilities 0.5, 0.3, 0.15, 0.05 for tokens 0..3
LOGITS = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))


def draws(params: SamplingParams, n: int = 200) -> list[int]:
    generator = make_generator(params.seed)
    return [sample(LOGITS, params, generator) for _ in range(n)]


def test_temperature_zero_is_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert sample(logits, SamplingParams(temperature=0.0), make_generator(0)) == 1


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    params = SamplingParams(temperature=1.0, seed=7)
    assert draws(params) == draws(params)
    assert draws(params) != draws(SamplingParams(temperature=1.0, seed=8))


def test_top_p_keeps_the_smallest_nucleus() -> None:
    assert set(draws(SamplingParams(top_p=0.7, seed=1))) == {0, 1}  # 0.5 + 0.3 reaches 0.7
    assert set(draws(SamplingParams(top_p=0.5, seed=1))) == {0}  # the top token alone reaches 0.5
    assert set(draws(SamplingParams(top_p=1.0, seed=1), n=2000)) == {0, 1, 2, 3}


def test_sampled_frequencies_follow_the_distribution() -> None:
    counts = torch.bincount(torch.tensor(draws(SamplingParams(seed=3), n=4000)), minlength=4).float() / 4000
    assert torch.allclose(counts, LOGITS.exp(), atol=0.03)


def test_low_temperature_sharpens_towards_argmax() -> None:
    assert set(draws(SamplingParams(temperature=0.05, seed=2))) == {0}


def test_kv_cache_grows_and_keeps_what_it_held() -> None:
    kv = SequenceKV(TINY, torch.device("cpu"), torch.float32, capacity=1)
    assert kv.capacity == GROWTH_QUANTUM
    k = torch.randn(10, TINY.num_key_value_heads, TINY.head_dim)
    kv.write(3, 0, k, -k)
    kv.length = 10
    kv.reserve(GROWTH_QUANTUM + 1)
    assert kv.capacity == 2 * GROWTH_QUANTUM
    keys, values = kv.read(3, 0, 10)
    assert torch.equal(keys, k) and torch.equal(values, -k)
    assert kv.nbytes() == 2 * TINY.num_hidden_layers * kv.capacity * TINY.num_key_value_heads * TINY.head_dim * 4


def test_kv_cache_growth_stops_at_the_context_window() -> None:
    config = replace(TINY, num_hidden_layers=1, context_length=3 * GROWTH_QUANTUM)
    kv = SequenceKV(config, torch.device("cpu"), torch.float32, capacity=2 * GROWTH_QUANTUM)
    kv.reserve(2 * GROWTH_QUANTUM + 1)
    assert kv.capacity == 3 * GROWTH_QUANTUM  # not 4: no position past the window is ever written


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    model = Transformer(TINY)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if name.endswith("norm.scale") else 0.0, 0.05 if name.endswith("weight") else 0.5)
        for name, b in model.named_buffers():
            b.copy_(torch.randint(0, 256, b.shape, dtype=torch.uint8) if name.endswith("blocks") else 127 - 3)
    return model.eval()


def test_chunked_prefill_and_decode_give_the_full_pass_logits(model: Transformer) -> None:
    tokens = torch.randint(0, TINY.vocab_size, (3 * TINY.sliding_window + 5,), generator=torch.Generator().manual_seed(1))
    full = model(tokens, all_logits=True)  # [T, V]
    kv = model.new_kv()
    pieces = [model(tokens[:5], kv, all_logits=True), model(tokens[5:13], kv, all_logits=True)]
    pieces += [model(tokens[i : i + 1], kv, all_logits=True) for i in range(13, len(tokens))]
    assert kv.length == len(tokens)
    torch.testing.assert_close(torch.cat(pieces), full, atol=1e-4, rtol=1e-4)


def test_greedy_decode_with_kv_matches_recompute(model: Transformer) -> None:
    # 24 steps past a prompt of 2 windows: every window layer slides. (64 steps against
    # transformers' generate are in test_model_numerics; full recomputes cost more per step.)
    steps = 24
    prompt = torch.randint(0, TINY.vocab_size, (2 * TINY.sliding_window + 3,), generator=torch.Generator().manual_seed(2))
    kv = model.new_kv()
    logits = model(prompt, kv)
    cached: list[int] = []
    for _ in range(steps):
        cached.append(int(logits[-1].argmax()))
        logits = model(torch.tensor(cached[-1:]), kv)
    recomputed: list[int] = []
    for _ in range(steps):
        recomputed.append(int(model(torch.cat((prompt, torch.tensor(recomputed, dtype=torch.long))))[-1].argmax()))
    assert cached == recomputed
    assert len(set(cached)) > 1  # a degenerate model repeating one token would prove little


def test_the_uniform_picks_through_the_cumulative_distribution() -> None:
    logits = torch.tensor([0.1, 0.2, 0.7]).log()[None]
    params = [SamplingParams(temperature=1.0)]
    assert [int(sample_rows(logits, params, [u])[0]) for u in (0.05, 0.15, 0.31, 0.95)] == [0, 1, 2, 2]


def test_rows_sample_as_one_row_at_a_time() -> None:
    """A batch of mixed settings gives each row what it would get alone with the same draw."""
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(3)) * 3
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=0.7),
              SamplingParams(temperature=1.0, top_p=0.5), SamplingParams(temperature=1.3, top_p=0.9)]
    uniforms = [0.0, 0.42, 0.77, 0.05]
    rows = sample_rows(logits, params, uniforms).tolist()
    assert rows == [int(sample_rows(logits[i : i + 1], [params[i]], [uniforms[i]])[0]) for i in range(4)]
    assert rows[0] == int(logits[0].argmax())


def test_a_tiny_top_p_keeps_only_the_most_likely_token() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    for u in (0.0, 0.5, 0.999):
        assert int(sample_rows(logits, [SamplingParams(temperature=1.0, top_p=1e-6)], [u])[0]) == 1
