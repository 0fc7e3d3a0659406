"""Triton GEMV kernels of the MXFP4 MoE for a few tokens (decode at small batches).

At batch 1 a token's 4 slots use 4 experts; the row-block kernels then pad 4 rows to 16 for
the tensor cores, sort slots by expert and keep too few bytes in flight. Here each program
takes one slot and a slice of weight rows, reads the expert straight from the router's ids, and
reduces with plain FMAs over the whole K: no sort, no padding, no tensor cores.

A GEMV at one token reads each weight once and does one multiply-add with it, so the
instructions spent per weight decide whether it runs at memory speed (an H100 issues about
4.4 warp instructions per weight at full bandwidth). v5 spent about 6: each code went to
float32 and met a float32 activation. Here the arithmetic is packed half precision:
- the activations arrive as f16 pairs (`pack_activations`: the order below, made by whoever
  writes them: the RMSNorm kernel for `up`, `up` itself for `down`);
- four weight bytes (eight e2m1 codes) become four f16 pairs by bit placement into e4m3 (sign
  to bit 7, e e m to bits 4..2: the e2m1 value times 2^-6, subnormals included, 9 integer
  operations) and Hopper's `cvt.rn.f16x2.e4m3x2`;
- one `fma.rn.f16x2` per two weights sums a 32-column group (one E8M0 scale) in f16, 16 terms
  a half; the two halves meet in fp32 and the scale multiplies once per group.
The loop is 198 SASS instructions per 64 weights (v5: 380), about 3 a weight; the kernel is no
longer issue-bound (H100: 1 token 33.9 -> 31.6 us a layer, 28.3 with look-ahead loads;
bench/results/moe_gemv_probe-v6b-h100.txt). f16 sums of 16 products cost about 1e-3 of
relative error, below the bf16 rounding the reference's own matmul has; activations past
f16's range (65504) would overflow, far above what a normed input or a clamped SwiGLU gives. Where the PTX cannot run (Triton's
interpreter, GPUs before sm_89) the same group sum is done in fp32 from the same operands.

Pair order: the decode takes byte j's low nibble (column 8w + 2j) and high nibble (8w + 2j + 1)
of word w and pairs bytes (0, 1) and (2, 3), so word w's pairs are the columns
(0, 2), (4, 6), (1, 3), (5, 7) + 8w: the even columns, then the odd ones.

- up:   h[s] = swiglu(x[s // k] @ W1[ids[s]].T + b1[ids[s]])             h [S, I] packed f16
- down: y[t, j] = route[t, j] * (h[t*k + j] @ W2[ids[t, j]].T + b2[ids[t, j]])   y [T, k, H] fp32
The sum over j and the residual add happen in the next RMSNorm's kernel (fused.add_rmsnorm).
Both kernels wait for the kernel before as kernels/pdl.py describes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.pdl import launch_args, wait_for_inputs

_2_POW_6 = tl.constexpr(64.0)
_2_POW_120 = tl.constexpr(1.329227995784916e36)


def _group_dot_ptx() -> str:
    """$0 = one 32-column group's dot, times 2^-6: $1..$4 its four weight words, $5 + 4j + i the
    activation pair i of word j (f16x2)."""
    lines = ["{", ".reg .b32 lo, hi, t, acc, p0, p1, p2, p3;", ".reg .b16 l0, l1, h0, h1;", ".reg .f32 x0, x1;"]
    for j in range(4):
        w = f"${1 + j}"
        lines += [
            f"shl.b32 t, {w}, 2;", "and.b32 lo, t, 0x1C1C1C1C;", f"shl.b32 t, {w}, 4;", "and.b32 t, t, 0x80808080;",
            "or.b32 lo, lo, t;",  # low nibbles: e e m to bits 4..2, sign to bit 7
            f"shr.u32 hi, {w}, 2;", "and.b32 hi, hi, 0x1C1C1C1C;", f"and.b32 t, {w}, 0x80808080;",
            "or.b32 hi, hi, t;",  # high nibbles
            "mov.b32 {l0, l1}, lo;", "mov.b32 {h0, h1}, hi;",
            "cvt.rn.f16x2.e4m3x2 p0, l0;", "cvt.rn.f16x2.e4m3x2 p1, l1;",
            "cvt.rn.f16x2.e4m3x2 p2, h0;", "cvt.rn.f16x2.e4m3x2 p3, h1;",
        ]
        for i in range(4):
            a = f"${5 + 4 * j + i}"
            lines.append(f"mul.rn.f16x2 acc, p0, {a};" if j == 0 and i == 0 else f"fma.rn.f16x2 acc, p{i}, {a}, acc;")
    lines += ["mov.b32 {l0, l1}, acc;", "cvt.f32.f16 x0, l0;", "cvt.f32.f16 x1, l1;", "add.f32 $0, x0, x1;", "}"]
    return "\n".join(lines)


_GROUP_DOT = tl.constexpr(_group_dot_ptx())
_GROUP_DOT_OPERANDS = tl.constexpr("=r," + ",".join(["r"] * 20))


@triton.jit
def _split4_3d(x):
    """x [A, B, 4] -> its four [A, B] slices, in order."""
    even, odd = tl.split(tl.reshape(x, (x.shape[0], x.shape[1], 2, 2)))
    x0, x2 = tl.split(even)
    x1, x3 = tl.split(odd)
    return x0, x1, x2, x3


@triton.jit
def _split4_2d(x):
    """x [A, 4] -> its four [A] slices, in order."""
    even, odd = tl.split(tl.reshape(x, (x.shape[0], 2, 2)))
    x0, x2 = tl.split(even)
    x1, x3 = tl.split(odd)
    return x0, x1, x2, x3


@triton.jit
def _code(word, shift):
    """The e2m1 code at bit `shift` of `word`, times 2^-6, as fp32 (exact)."""
    c = (word >> shift) & 0xF
    mag = ((c & 7) << 22).to(tl.float32, bitcast=True) * _2_POW_120  # value * 2^-126 * 2^120
    return tl.where((c & 8) != 0, -mag, mag)


@triton.jit
def _pair_dot(word, pair, lo_shift: tl.constexpr):
    """Two codes of `word` (at lo_shift and lo_shift + 8) times the f16 pair `pair`, in fp32."""
    lo = (pair & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    hi = (pair >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return _code(word, lo_shift) * lo + _code(word, lo_shift + 8) * hi


@triton.jit
def _word_dot(word, a0, a1, a2, a3):
    """One word's eight codes against its four pairs (the module docstring's order), fp32."""
    return (_pair_dot(word, a0, 0) + _pair_dot(word, a1, 16)) + (_pair_dot(word, a2, 4) + _pair_dot(word, a3, 20))


@triton.jit
def _load_weights(w_ptr, s_ptr, rows, row_ok, stride_sn, k0, K: tl.constexpr, BK: tl.constexpr):
    """One K step's weights: the 4 words of each 32-column group [BN, G, 4] int32 and the scale
    exponents [BN, G] int32. Past K everything is masked (no memory traffic)."""
    G: tl.constexpr = BK // 32
    g = k0 // 32 + tl.arange(0, G)
    g_ok = g < K // 32
    four = tl.arange(0, 4)
    # A row is K / 8 words, a constant: with the stride known, Triton can prove the rows' 16-byte
    # alignment and load each group's four words with one 16-byte load.
    raw = tl.load(w_ptr + rows[:, None, None] * (K // 8) + g[None, :, None] * 4 + four[None, None, :],
                  mask=row_ok[:, None, None] & g_ok[None, :, None], other=0)
    s = tl.load(s_ptr + rows[:, None] * stride_sn + g[None, :], mask=row_ok[:, None] & g_ok[None, :],
                other=0).to(tl.int32)
    return raw, s


@triton.jit
def _load_act(act_ptr, k0, K: tl.constexpr, BK: tl.constexpr):
    """One K step's activation pairs [G, 4 words, 4 pairs] int32 (word j's pair i at 4j + i)."""
    G: tl.constexpr = BK // 32
    g = k0 // 32 + tl.arange(0, G)
    four = tl.arange(0, 4)
    return tl.load(act_ptr + g[:, None, None] * 16 + four[None, :, None] * 4 + four[None, None, :],
                   mask=(g < K // 32)[:, None, None], other=0)


@triton.jit
def _step_sum(raw, act, s, ASM: tl.constexpr):
    """[BN, G]: each 32-column group's dot times its scale, times 2^-6."""
    w0, w1, w2, w3 = _split4_3d(raw)
    p0, p1, p2, p3 = _split4_3d(act)  # [G, 4 words] for each pair
    a00, a01, a02, a03 = _split4_2d(p0)  # pair 0 of words 0..3
    a10, a11, a12, a13 = _split4_2d(p1)
    a20, a21, a22, a23 = _split4_2d(p2)
    a30, a31, a32, a33 = _split4_2d(p3)
    if ASM:
        dot = tl.inline_asm_elementwise(
            _GROUP_DOT, _GROUP_DOT_OPERANDS,
            [w0, w1, w2, w3,
             a00[None, :], a10[None, :], a20[None, :], a30[None, :],
             a01[None, :], a11[None, :], a21[None, :], a31[None, :],
             a02[None, :], a12[None, :], a22[None, :], a32[None, :],
             a03[None, :], a13[None, :], a23[None, :], a33[None, :]],
            dtype=tl.float32, is_pure=True, pack=1)
    else:
        dot = ((_word_dot(w0, a00[None, :], a10[None, :], a20[None, :], a30[None, :])
                + _word_dot(w1, a01[None, :], a11[None, :], a21[None, :], a31[None, :]))
               + (_word_dot(w2, a02[None, :], a12[None, :], a22[None, :], a32[None, :])
                  + _word_dot(w3, a03[None, :], a13[None, :], a23[None, :], a33[None, :])))
    return dot * (s << 23).to(tl.float32, bitcast=True)  # 2^(s - 127)


@triton.jit
def _dot_rows(act_ptr, w_ptr, s_ptr, rows, row_ok, stride_sn, K: tl.constexpr, BK: tl.constexpr, ASM: tl.constexpr,
              WAIT: tl.constexpr, PREFETCH: tl.constexpr):
    """sum_k a[k] * W[rows, k] for MXFP4 rows -> [BN] fp32. act_ptr: a's K/8 words of 4 pairs
    (pack_activations); w_ptr: the rows' int32 words, K / 8 a row. WAIT: wait for the kernel
    before (pdl.py) once the first step's weights are on their way, before reading a.
    PREFETCH: each step's weights are loaded before the step before is summed."""
    raw, s = _load_weights(w_ptr, s_ptr, rows, row_ok, stride_sn, 0, K, BK)
    wait_for_inputs(WAIT)
    if PREFETCH:
        acc = tl.zeros((rows.shape[0], BK // 32), dtype=tl.float32)
        for k0 in range(0, K, BK):
            raw_next, s_next = _load_weights(w_ptr, s_ptr, rows, row_ok, stride_sn, k0 + BK, K, BK)  # masked past K
            acc += _step_sum(raw, _load_act(act_ptr, k0, K, BK), s, ASM)
            raw, s = raw_next, s_next
    else:
        acc = _step_sum(raw, _load_act(act_ptr, 0, K, BK), s, ASM)
        for k0 in range(BK, K, BK):
            raw, s = _load_weights(w_ptr, s_ptr, rows, row_ok, stride_sn, k0, K, BK)
            acc += _step_sum(raw, _load_act(act_ptr, k0, K, BK), s, ASM)
    return tl.sum(acc, axis=1) * _2_POW_6  # the decoded codes were the values times 2^-6


@triton.jit
def _gemv_up_kernel(x_ptr, ids_ptr, w_ptr, s_ptr, b_ptr, h_ptr, stride_x, stride_we, stride_se,
                    stride_sn, stride_be, stride_h, limit, alpha,
                    K: tl.constexpr, N: tl.constexpr, TOPK: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    ASM: tl.constexpr, PREFETCH: tl.constexpr, PDL: tl.constexpr = False):
    slot = tl.program_id(0)
    wait_for_inputs(PDL)
    e = tl.load(ids_ptr + slot).to(tl.int64)
    token = slot // TOPK
    rows = tl.program_id(1) * BN + tl.arange(0, BN)
    row_ok = rows < N
    acc = _dot_rows(x_ptr + token * stride_x, w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok,
                    stride_sn, K, BK, ASM, False, PREFETCH)
    acc += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)
    # gpt-oss quirk: gate and up interleave (even, odd rows); clamp gate above, up both sides.
    gate, up = tl.split(tl.reshape(acc, (BN // 2, 2)))
    gate = tl.minimum(gate, limit)
    up = tl.minimum(tl.maximum(up, -limit), limit)
    h = gate * tl.sigmoid(alpha * gate) * (up + 1.0)  # [BN/2]
    c = tl.program_id(1) * (BN // 2) + tl.arange(0, BN // 2)  # h's columns, stored as down's pairs
    pos = c // 8 * 8 + c % 2 * 4 + c % 8 // 2
    tl.store(h_ptr + slot * stride_h + pos, h.to(tl.float16), mask=c < N // 2)


@triton.jit
def _gemv_down_kernel(h_ptr, ids_ptr, route_ptr, w_ptr, s_ptr, b_ptr, y_ptr, stride_h, stride_we, stride_se,
                      stride_sn, stride_be, stride_y,
                      K: tl.constexpr, N: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, ASM: tl.constexpr,
                      PREFETCH: tl.constexpr, PDL: tl.constexpr = False):
    slot = tl.program_id(0)
    # The ids are the router's, two kernels back (route, up, down), which has finished by the time
    # this kernel's programs start (pdl.py): read before waiting, from L2 (.cg), the expert's
    # first weights too. h, up's output, only after.
    e = tl.load(ids_ptr + slot, cache_modifier=".cg").to(tl.int64)
    rows = tl.program_id(1) * BN + tl.arange(0, BN)
    row_ok = rows < N
    y = _dot_rows(h_ptr + slot * stride_h, w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok,
                  stride_sn, K, BK, ASM, PDL, PREFETCH)
    y += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + slot * stride_y + rows, tl.load(route_ptr + slot) * y, mask=row_ok)


def pack_activations(a: torch.Tensor) -> torch.Tensor:
    """a [T, K] -> [T, K/8, 4] int32: each 8 columns as the four f16 pairs the decode meets
    (columns 0 2 4 6 1 3 5 7). The plain form of what the RMSNorm kernel writes for `up`."""
    t, k = a.shape
    pairs = a.reshape(t, k // 8, 4, 2).transpose(2, 3).to(torch.float16).contiguous()
    return pairs.view(torch.int32).view(t, k // 8, 4)


# (rows per program, K step, warps, look-ahead loads) of each launch by tokens: the best of
# bench/moe_gemv_probe.py's sweep on an H100 (bench/results/moe_gemv_probe-v6b-h100.txt). At one
# token the small programs all fit on the GPU at once and loading each step's weights before
# summing the one before pays (up+down 28.4 against 31.7 us a layer); from two tokens it does not.
GemvTiles = tuple[int, int, int, bool]
UP_TILES: dict[int, GemvTiles] = {1: (8, 256, 1, True), 2: (8, 512, 2, False)}
DOWN_TILES: dict[int, GemvTiles] = {1: (8, 512, 2, True), 2: (16, 256, 2, False)}
MORE_TOKENS_TILES: GemvTiles = (16, 512, 4, False)


def _asm(x: torch.Tensor, asm: bool) -> bool:
    """The PTX group sum (KernelPlan.moe_gemv_asm) where it can run: it needs the fp8 conversion of
    sm_89 and later (Ada, Hopper, Blackwell); Triton's interpreter cannot run inline assembly."""
    return asm and x.is_cuda and torch.cuda.get_device_capability(x.device) >= (8, 9)


def _words(blocks: torch.Tensor) -> torch.Tensor:
    e, n, groups, _ = blocks.shape
    return blocks.view(torch.int32).view(e, n, groups * 4)


def gemv_up(x: torch.Tensor, ids: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
            limit: float, alpha: float, asm: bool = True, pdl: bool = False,
            tiles: GemvTiles | None = None) -> torch.Tensor:
    """x [T, H] (or its pack_activations form [T, H/8, 4]), ids [T, k] -> h [T * k, I/8, 4]
    int32: slot t * k + j's SwiGLU output, packed for gemv_down. `tiles`: a bench's sweep; None,
    UP_TILES by tokens."""
    e, n, groups, _ = blocks.shape  # n = 2I
    topk = ids.shape[1]
    act = x if x.dtype == torch.int32 else pack_activations(x)
    w = _words(blocks)
    h = torch.empty(ids.numel(), n // 16, 4, dtype=torch.int32, device=x.device)
    bn, bk, warps, prefetch = tiles or UP_TILES.get(ids.shape[0], MORE_TOKENS_TILES)
    grid = (ids.numel(), triton.cdiv(n, bn))
    _gemv_up_kernel[grid](
        act, ids, w, scales, bias, h.view(torch.float16), act.stride(0), w.stride(0), scales.stride(0),
        scales.stride(1), bias.stride(0), h.stride(0) * 2, float(limit), float(alpha),
        K=groups * 32, N=n, TOPK=topk, BN=bn, BK=bk, ASM=_asm(x, asm), PREFETCH=prefetch, num_warps=warps,
        **launch_args(x, pdl),
    )
    return h


def gemv_down(h: torch.Tensor, ids: torch.Tensor, route: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor,
              bias: torch.Tensor, asm: bool = True, pdl: bool = False, tiles: GemvTiles | None = None) -> torch.Tensor:
    """h [T * k, I/8, 4] (gemv_up's) -> y [T, k, H] fp32: each slot's expert output times its
    routing weight."""
    e, n, groups, _ = blocks.shape  # n = H
    w = _words(blocks)
    route = route.float().contiguous()
    y = torch.empty(ids.shape[0], ids.shape[1], n, dtype=torch.float32, device=h.device)
    bn, bk, warps, prefetch = tiles or DOWN_TILES.get(ids.shape[0], MORE_TOKENS_TILES)
    grid = (ids.numel(), triton.cdiv(n, bn))
    _gemv_down_kernel[grid](
        h, ids, route, w, scales, bias, y, h.stride(0), w.stride(0), scales.stride(0), scales.stride(1),
        bias.stride(0), y.stride(1), K=groups * 32, N=n, BN=bn, BK=bk, ASM=_asm(h, asm), PREFETCH=prefetch,
        num_warps=warps, **launch_args(h, pdl),
    )
    return y
