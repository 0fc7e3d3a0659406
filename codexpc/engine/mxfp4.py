"""MXFP4 in plain PyTorch: the reference every later kernel is checked against.

An MXFP4 tensor is stored as two uint8 tensors:
- `blocks` [..., G, 16]: 4-bit e2m1 values, two per byte, the low nibble first (32 values per block);
- `scales` [..., G]: one power-of-two scale per block, a u8 exponent with bias 127.
Dequantized, it is [..., G * 32]. Experts stay in this form in memory; only the experts a token
chose are dequantized, on the fly.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

VALUES_PER_BLOCK = 32
BYTES_PER_BLOCK = 16
SCALE_BIAS = 127

# The 16 e2m1 values, indexed by the 4-bit code (sign bit is the high bit of the nibble).
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[..., G, 16] u8 blocks and [..., G] u8 scales -> [..., G * 32] values of `dtype`."""
    assert blocks.dtype == torch.uint8 and scales.dtype == torch.uint8
    assert blocks.shape[:-1] == scales.shape and blocks.shape[-1] == BYTES_PER_BLOCK, (
        blocks.shape,
        scales.shape,
    )
    # One gather per byte: a byte holds two values, so the table maps a byte to its (low, high) pair.
    pairs = F.embedding(blocks.int(), _byte_table(dtype, blocks.device))  # [..., G, 16, 2]: low nibble first
    # A power of two is exact in any float dtype with 8 exponent bits (fp32, bf16), so is the product.
    scale = torch.exp2(scales.float() - SCALE_BIAS).to(dtype)  # [..., G]
    values = pairs.flatten(-2) * scale.unsqueeze(-1)  # [..., G, 32]
    return values.flatten(-2)  # [..., G * 32]


@functools.cache
def _byte_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[256, 2]: the two e2m1 values of every byte, low nibble first."""
    lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
    codes = torch.arange(256)
    return torch.stack((lut[codes & 0x0F], lut[codes >> 4]), dim=-1).to(dtype=dtype, device=device)


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., N] float (N a multiple of 32) -> (blocks [..., N/32, 16], scales [..., N/32]).

    Round to nearest e2m1 after scaling each block so its largest magnitude fits in 6.0. Used to
    build test weights and by anyone who needs MXFP4 from floats; not a bit-exact copy of any
    upstream quantizer.
    """
    assert weight.shape[-1] % VALUES_PER_BLOCK == 0, weight.shape
    w = weight.float().reshape(*weight.shape[:-1], -1, VALUES_PER_BLOCK)  # [..., G, 32]
    amax = w.abs().amax(dim=-1).clamp(min=2.0**-126)  # [..., G]
    # Smallest power of two 2^e with amax / 2^e <= 6 (the largest e2m1 magnitude).
    exponent = torch.ceil(torch.log2(amax / 6.0)).clamp(-SCALE_BIAS, 255 - SCALE_BIAS)
    scaled = w / torch.exp2(exponent).unsqueeze(-1)  # [..., G, 32]
    lut = torch.tensor(FP4_VALUES[:8])  # the magnitudes
    codes = (scaled.abs().unsqueeze(-1) - lut).abs().argmin(dim=-1)  # [..., G, 32] in 0..7
    codes = codes + 8 * (scaled < 0).long()  # the sign bit
    codes = codes.to(torch.uint8)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)  # [..., G, 16]: low nibble first
    scales = (exponent + SCALE_BIAS).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()
