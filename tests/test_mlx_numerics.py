"""The MLX model (its CPU build, fp32) against the numerics reference, codexpc/engine/model.py.

Also pins what made a first bf16 try differ (docs/mlx.md): gpt-oss's YaRN does not round the
ends of its ramp, mlx-lm's YarnRoPE does. The rest (MXFP4 layout, sinks, swiglu clamp and alpha,
the sliding window) agrees to fp32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

mx = pytest.importorskip("mlx.core", reason="MLX is not installed (pip install 'mlx[cpu]' on Linux)")

from codexpc.checkpoint import LAYOUTS, open_checkpoint, write_checkpoint  # noqa: E402
from codexpc.engine.mlx.kv_cache import SequenceCache  # noqa: E402
from codexpc.engine.mlx.model import Rope, swiglu  # noqa: E402
from codexpc.engine.mlx.weights import load_weights, to_mlx  # noqa: E402
from codexpc.engine.model import SWIGLU_ALPHA, Rotary, apply_rotary  # noqa: E402
from codexpc.engine.model import swiglu as swiglu_reference  # noqa: E402
from codexpc.engine.model_config import TINY  # noqa: E402
from codexpc.engine.mxfp4 import dequantize, quantize  # noqa: E402
from codexpc.engine.weights import load_model  # noqa: E402

FP32_TOL = 1e-4  # logits of scale ~6; measured differences are ~7e-6
# Longer than the window (8) many times, and prefilled past one 256-token K/V growth step.
# Ids below Metal's vocabulary (200014: it drops the reserved tail).
PROMPT = torch.randint(0, 200_000, (300,), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=LAYOUTS)
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = request.param
    return write_checkpoint(TINY, layout, tmp_path_factory.mktemp(f"tiny-{layout}") / layout, seed=0)


@pytest.fixture(scope="module")
def reference_logits(checkpoint: Path) -> np.ndarray:
    """The reference model on the same checkpoint (Metal's holds a shorter vocabulary)."""
    return load_model(open_checkpoint(checkpoint), torch.device("cpu"))(PROMPT, all_logits=True).numpy()


def test_prefill_logits_equal_the_reference_in_every_layout(checkpoint: Path, reference_logits: np.ndarray) -> None:
    model = load_weights(open_checkpoint(checkpoint), mx.float32)
    cache = SequenceCache(TINY, mx.float32)
    # Logits of the last 20 positions only: MLX's CPU wheel multiplies with the reference BLAS,
    # and 300 rows of the 201k-row unembedding take it 10 s (docs/mlx.md).
    model(mx.array(PROMPT[:280].numpy()), cache)
    logits = np.array(model(mx.array(PROMPT[280:].numpy()), cache, all_logits=True))
    assert np.abs(logits - reference_logits[280:]).max() < FP32_TOL
    assert (logits.argmax(-1) == reference_logits[280:].argmax(-1)).all()


def test_decoding_token_by_token_equals_the_reference(checkpoint: Path, reference_logits: np.ndarray) -> None:
    model = load_weights(open_checkpoint(checkpoint), mx.float32)
    cache = SequenceCache(TINY, mx.float32)
    model(mx.array(PROMPT[:250].numpy()), cache)
    for i in range(250, 270):
        logits = np.array(model(mx.array(PROMPT[i : i + 1].numpy()), cache))[0]
        assert np.abs(logits - reference_logits[i]).max() < FP32_TOL


def test_rope_is_gpt_oss_yarn_unrounded() -> None:
    x = torch.randn(7, 3, TINY.head_dim)
    cos, sin = Rotary(TINY).cos_sin(40, 7, torch.device("cpu"))
    expected = apply_rotary(x, cos, sin).numpy()
    got = Rope(TINY)(mx.array(x.numpy()).transpose(1, 0, 2)[None], offset=40)
    assert np.abs(np.array(got[0].transpose(1, 0, 2)) - expected).max() < 1e-5


def test_mlx_lm_yarn_rounds_the_ramp_and_so_differs() -> None:
    """Why the model's RoPE is ours: mlx-lm's YarnRoPE floors/ceils the ramp's ends."""
    rope_utils = pytest.importorskip("mlx_lm.models.rope_utils")
    c = TINY
    theirs = rope_utils.YarnRoPE(c.head_dim, base=c.rope_theta, scaling_factor=c.rope_scaling_factor,
                                 original_max_position_embeddings=c.initial_context_length,
                                 beta_fast=c.rope_ntk_beta, beta_slow=c.rope_ntk_alpha)
    x = mx.array(np.random.default_rng(0).standard_normal((1, 3, 7, c.head_dim)).astype(np.float32))
    difference = np.abs(np.array(theirs(x, offset=40)) - np.array(Rope(c)(x, offset=40))).max()
    assert difference > 1e-2


def test_mxfp4_bytes_are_mlx_mxfp4_as_they_are() -> None:
    blocks, scales = quantize(torch.randn(3, 64, 96))
    packed = to_mlx("block.0.mlp.mlp1_weight.blocks", blocks, mx.float32)
    got = mx.dequantize(packed, to_mlx("block.0.mlp.mlp1_weight.scales", scales, mx.float32),
                        group_size=32, bits=4, mode="mxfp4", dtype=mx.float32)
    assert np.array_equal(np.array(got), dequantize(blocks, scales, torch.float32).numpy())


def test_swiglu_clamps_and_alpha_as_the_reference() -> None:
    h = torch.linspace(-12, 12, 2 * 64).reshape(1, -1)
    expected = swiglu_reference(h, TINY.swiglu_limit, SWIGLU_ALPHA).numpy()
    assert np.abs(np.array(swiglu(mx.array(h.numpy()), TINY.swiglu_limit)) - expected).max() < 1e-5
