"""Triton GEMV kernels of the MXFP4 MoE for a few tokens (decode at small batches).

At batch 1 a token's 4 slots use 4 experts; the row-block kernels then pad 4 rows to 16 for
the tensor cores, sort slots by expert and keep too few bytes in flight. Here each program
takes one slot and a slice of weight rows, reads the expert straight from the router's ids, and
reduces with plain FMAs over the whole K: no sort, no padding, no tensor cores.

The e2m1 decode: a byte holds two codes; low nibbles pair with the even columns of the
activation and high nibbles with the odd ones, so the two halves never need interleaving.
On CUDA (ASM) four bytes at a time become e4m3 bytes by bit placement and Hopper's fp8
conversion does the rest (see _E2M1_X8_TO_F32). Elsewhere (Triton's interpreter) each code's
3 magnitude bits go to float32's exponent low bits and mantissa top bit (the value times
2^-126) and its sign bit to the sign, the activation pre-scaled by 2^64 so that the products
stay normal floats. Each group of 32 columns is summed first and only then multiplied by its
E8M0 scale (one multiply per group, not per weight).

- up:   h[s] = swiglu(x[s // k] @ W1[ids[s]].T + b1[ids[s]])             h [S, I] fp32
- down: y[t, j] = route[t, j] * (h[t*k + j] @ W2[ids[t, j]].T + b2[ids[t, j]])   y [T, k, H] fp32
The sum over j and the residual add happen in the next RMSNorm's kernel (fused.add_rmsnorm).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_2_POW_64 = tl.constexpr(18446744073709551616.0)
_2_POW_62 = tl.constexpr(4611686018427387904.0)
_2_POW_6 = tl.constexpr(64.0)

# Four bytes (eight e2m1 codes) -> the four low-nibble values and the four high-nibble values,
# each times 2^-6, as float32. Each code becomes an e4m3 byte by placing its bits (sign to bit 7,
# e e m to bits 4..2: an e4m3 number equal to the e2m1 one times 2^-6, subnormals included),
# five integer operations for all eight, then Hopper's own conversion takes e4m3 pairs to f16
# pairs and f16 to f32. About 2 operations a weight where the arithmetic decode takes 5.
_E2M1_X8_TO_F32 = tl.constexpr("""
{
.reg .b32 lo, hi, t;
.reg .b16 l0, l1, h0, h1, p0, p1, p2, p3, q0, q1, q2, q3;
.reg .b32 f01, f23, g01, g23;
shl.b32 t, $8, 2;
and.b32 lo, t, 0x1C1C1C1C;
shl.b32 t, $8, 4;
and.b32 t, t, 0x80808080;
or.b32 lo, lo, t;
shr.u32 hi, $8, 2;
and.b32 hi, hi, 0x1C1C1C1C;
and.b32 t, $8, 0x80808080;
or.b32 hi, hi, t;
mov.b32 {l0, l1}, lo;
mov.b32 {h0, h1}, hi;
cvt.rn.f16x2.e4m3x2 f01, l0;
cvt.rn.f16x2.e4m3x2 f23, l1;
cvt.rn.f16x2.e4m3x2 g01, h0;
cvt.rn.f16x2.e4m3x2 g23, h1;
mov.b32 {p0, p1}, f01;
mov.b32 {p2, p3}, f23;
mov.b32 {q0, q1}, g01;
mov.b32 {q2, q3}, g23;
cvt.f32.f16 $0, p0;
cvt.f32.f16 $1, p1;
cvt.f32.f16 $2, p2;
cvt.f32.f16 $3, p3;
cvt.f32.f16 $4, q0;
cvt.f32.f16 $5, q1;
cvt.f32.f16 $6, q2;
cvt.f32.f16 $7, q3;
}
""")


@triton.jit
def _load_step(a_ptr, w_ptr, s_ptr, rows, row_ok, stride_wn, stride_sn, k0, K: tl.constexpr, BK: tl.constexpr):
    """One K step's operands: weight bytes [BN, BK/2] u8, even and odd activations [BK/2] fp32,
    scale exponents [BN, BK/32] i32. Past K everything is masked (no memory traffic)."""
    kb = k0 // 2 + tl.arange(0, BK // 2)  # byte columns of this step
    kb_ok = kb < K // 2
    raw = tl.load(w_ptr + rows[:, None] * stride_wn + kb[None, :], mask=row_ok[:, None] & kb_ok[None, :], other=0)
    a_even = tl.load(a_ptr + 2 * kb, mask=kb_ok, other=0.0).to(tl.float32)
    a_odd = tl.load(a_ptr + 2 * kb + 1, mask=kb_ok, other=0.0).to(tl.float32)
    ks = k0 // 32 + tl.arange(0, BK // 32)
    s = tl.load(s_ptr + rows[:, None] * stride_sn + ks[None, :], mask=row_ok[:, None] & (ks[None, :] < K // 32),
                other=0).to(tl.int32)
    return raw, a_even, a_odd, s


@triton.jit
def _step_sum(raw, a_even, a_odd, s, ASM: tl.constexpr):
    """[BN, BK/32]: each 32-column group's dot, times its scale (and 2^-6 or 2^-62: see _dot_rows)."""
    BN: tl.constexpr = raw.shape[0]
    G: tl.constexpr = raw.shape[1] // 16
    if ASM:
        lo, hi = tl.inline_asm_elementwise(_E2M1_X8_TO_F32, "=r,=r,=r,=r,=r,=r,=r,=r,r", [raw],
                                           dtype=(tl.float32, tl.float32), is_pure=True, pack=4)
    else:
        a_even = a_even * _2_POW_64
        a_odd = a_odd * _2_POW_64
        code = raw.to(tl.int32)
        lo = (((code << 22) & 0x01C00000) | ((code << 28) & -2147483648)).to(tl.float32, bitcast=True)
        hi = (((code << 18) & 0x01C00000) | ((code << 24) & -2147483648)).to(tl.float32, bitcast=True)
    part = lo * a_even[None, :] + hi * a_odd[None, :]
    group = tl.sum(tl.reshape(part, (BN, G, 16)), axis=2)  # [BN, BK/32]
    return group * (s << 23).to(tl.float32, bitcast=True)  # 2^(s - 127)


@triton.jit
def _dot_rows(a_ptr, w_ptr, s_ptr, rows, row_ok, stride_wn, stride_sn, K: tl.constexpr, BK: tl.constexpr,
              ASM: tl.constexpr):
    """sum_k a[k] * W[rows, k] for MXFP4 rows -> [BN] fp32. a: K values (bf16 or fp32).
    ASM: the e4m3 decode in inline PTX (CUDA); else the bit placement (any Triton target).
    (Issuing the next step's loads before this step's arithmetic was slower on an H100: 49 vs
    43 us a layer at 1 token, 242 vs 186 at 8; bench/results/gemv_prefetch-h100.txt.)"""
    acc = tl.zeros((rows.shape[0], BK // 32), dtype=tl.float32)
    for k0 in range(0, K, BK):
        raw, a_even, a_odd, s = _load_step(a_ptr, w_ptr, s_ptr, rows, row_ok, stride_wn, stride_sn, k0, K, BK)
        acc += _step_sum(raw, a_even, a_odd, s, ASM)
    # ASM: values were the codes times 2^-6; bit placement: times 2^-126 with a times 2^64.
    return tl.sum(acc, axis=1) * (_2_POW_6 if ASM else _2_POW_62)


@triton.jit
def _gemv_up_kernel(x_ptr, ids_ptr, w_ptr, s_ptr, b_ptr, h_ptr, stride_x, stride_we, stride_wn, stride_se,
                    stride_sn, stride_be, stride_h, limit, alpha,
                    K: tl.constexpr, N: tl.constexpr, TOPK: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    ASM: tl.constexpr):
    slot = tl.program_id(0)
    e = tl.load(ids_ptr + slot).to(tl.int64)
    token = slot // TOPK
    rows = tl.program_id(1) * BN + tl.arange(0, BN)
    row_ok = rows < N
    acc = _dot_rows(x_ptr + token * stride_x, w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok,
                    stride_wn, stride_sn, K, BK, ASM)
    acc += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)
    # gpt-oss quirk: gate and up interleave (even, odd rows); clamp gate above, up both sides.
    gate, up = tl.split(tl.reshape(acc, (BN // 2, 2)))
    gate = tl.minimum(gate, limit)
    up = tl.minimum(tl.maximum(up, -limit), limit)
    h = gate * tl.sigmoid(alpha * gate) * (up + 1.0)  # [BN/2]
    hcols = tl.program_id(1) * (BN // 2) + tl.arange(0, BN // 2)
    tl.store(h_ptr + slot * stride_h + hcols, h, mask=hcols < N // 2)


@triton.jit
def _gemv_down_kernel(h_ptr, ids_ptr, route_ptr, w_ptr, s_ptr, b_ptr, y_ptr, stride_h, stride_we, stride_wn,
                      stride_se, stride_sn, stride_be, stride_y,
                      K: tl.constexpr, N: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, ASM: tl.constexpr):
    slot = tl.program_id(0)
    e = tl.load(ids_ptr + slot).to(tl.int64)
    rows = tl.program_id(1) * BN + tl.arange(0, BN)
    row_ok = rows < N
    y = _dot_rows(h_ptr + slot * stride_h, w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok,
                  stride_wn, stride_sn, K, BK, ASM)
    y += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + slot * stride_y + rows, tl.load(route_ptr + slot) * y, mask=row_ok)


# The PTX decode where the code runs on a GPU (Triton's interpreter cannot run inline assembly).
ASM_DECODE = True

# (rows per program, K step, warps) of each launch; bench/fast_engine_decode.py sweeps them.
UP_TILES = (16, 512, 4)
DOWN_TILES = (16, 512, 4)


def _asm(x: torch.Tensor) -> bool:
    """The PTX decode needs the fp8 conversion of sm_89 and later (Ada, Hopper, Blackwell)."""
    return ASM_DECODE and x.is_cuda and torch.cuda.get_device_capability(x.device) >= (8, 9)


def gemv_up(x: torch.Tensor, ids: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
            limit: float, alpha: float) -> torch.Tensor:
    """x [T, H], ids [T, k] -> h [T * k, I] fp32 (slot t * k + j for token t's j-th expert)."""
    e, n, groups, _ = blocks.shape  # n = 2I
    topk = ids.shape[1]
    w = blocks.view(e, n, groups * 16)
    h = torch.empty(ids.numel(), n // 2, dtype=torch.float32, device=x.device)
    bn, bk, warps = UP_TILES
    grid = (ids.numel(), triton.cdiv(n, bn))
    _gemv_up_kernel[grid](
        x, ids, w, scales, bias, h, x.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1),
        bias.stride(0), h.stride(0), float(limit), float(alpha),
        K=groups * 32, N=n, TOPK=topk, BN=bn, BK=bk, ASM=_asm(x), num_warps=warps,
    )
    return h


def gemv_down(h: torch.Tensor, ids: torch.Tensor, route: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor,
              bias: torch.Tensor) -> torch.Tensor:
    """h [T * k, I] -> y [T, k, H] fp32: each slot's expert output times its routing weight."""
    e, n, groups, _ = blocks.shape  # n = H
    w = blocks.view(e, n, groups * 16)
    route = route.float().contiguous()
    y = torch.empty(ids.shape[0], ids.shape[1], n, dtype=torch.float32, device=h.device)
    bn, bk, warps = DOWN_TILES
    grid = (ids.numel(), triton.cdiv(n, bn))
    _gemv_down_kernel[grid](
        h, ids, route, w, scales, bias, y, h.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1),
        bias.stride(0), y.stride(1), K=groups * 32, N=n, BN=bn, BK=bk, ASM=_asm(h), num_warps=warps,
    )
    return y
