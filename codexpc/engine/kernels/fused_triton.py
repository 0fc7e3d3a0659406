"""Triton kernels of the fused small operations (see fused.py for the references; the router's
top-k is in routing_triton.py)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.pdl import launch_args, wait_for_inputs


@triton.jit
def _add_rmsnorm_kernel(x_ptr, y_ptr, scale_ptr, sum_ptr, out_ptr, packed_ptr, stride_x, stride_y, stride_yj,
                        stride_sum, stride_out, stride_packed, eps, H: tl.constexpr, BLOCK: tl.constexpr,
                        HAS_Y: tl.constexpr, J: tl.constexpr, PACK: tl.constexpr, PDL: tl.constexpr = False):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < H
    wait_for_inputs(PDL)
    s = tl.load(x_ptr + row * stride_x + cols, mask=ok, other=0.0)
    if HAS_Y:
        y = tl.zeros([BLOCK], dtype=tl.float32)
        for j in tl.static_range(J):  # the MoE's k weighted slots (J = 1: a plain [T, H] y)
            y += tl.load(y_ptr + row * stride_y + j * stride_yj + cols, mask=ok, other=0.0).to(tl.float32)
        if J > 1:  # the slots' sum is rounded to the activations' dtype, as the reference's is
            y = y.to(sum_ptr.dtype.element_ty).to(tl.float32)
        # x + y rounded to the activations' dtype before the norm, as the reference's is.
        s = (s.to(tl.float32) + y).to(sum_ptr.dtype.element_ty)
        tl.store(sum_ptr + row * stride_sum + cols, s, mask=ok)
    t = s.to(tl.float32)
    t = t * tl.rsqrt(tl.sum(t * t, axis=0) / H + eps)
    t = t * tl.load(scale_ptr + cols, mask=ok, other=0.0)
    tl.store(out_ptr + row * stride_out + cols, t.to(out_ptr.dtype.element_ty), mask=ok)
    if PACK:  # also as the MoE GEMV's f16 pairs (moe_gemv_triton.pack_activations' order)
        pos = cols // 8 * 8 + cols % 2 * 4 + cols % 8 // 2
        tl.store(packed_ptr + row * stride_packed + pos, t.to(tl.float16), mask=ok)


@triton.jit
def _rope_write_kv_kernel(qkv_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, v_ptr, slots_ptr, stride_qkv, stride_cs, stride_q,
                          HEADS: tl.constexpr, KV: tl.constexpr, D: tl.constexpr, PDL: tl.constexpr = False):
    t = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    half = tl.arange(0, D // 2)
    wait_for_inputs(PDL)
    src = qkv_ptr + t * stride_qkv + head * D
    x1 = tl.load(src + half)
    x2 = tl.load(src + D // 2 + half)
    slot = tl.load(slots_ptr + t)
    if head >= HEADS + KV:  # v: copied as it is
        dst = v_ptr + slot * (KV * D) + (head - HEADS - KV) * D
        tl.store(dst + half, x1.to(v_ptr.dtype.element_ty))
        tl.store(dst + D // 2 + half, x2.to(v_ptr.dtype.element_ty))
    else:
        # Halves of D pair up (not interleaved pairs), as in the model's apply_rotary.
        cos = tl.load(cos_ptr + t * stride_cs + half)
        sin = tl.load(sin_ptr + t * stride_cs + half)
        a, b = x1.to(tl.float32), x2.to(tl.float32)
        r1 = a * cos - b * sin
        r2 = b * cos + a * sin
        if head < HEADS:
            dst = q_ptr + t * stride_q + head * D
        else:
            dst = k_ptr + slot * (KV * D) + (head - HEADS) * D
        tl.store(dst + half, r1.to(dst.dtype.element_ty))
        tl.store(dst + D // 2 + half, r2.to(dst.dtype.element_ty))


# A decode step's norms are one program a token, latency-bound: at one token 16 warps take 2.15 us
# a launch against 2.49 with 4 (H100, bench/decode_b1_probe.py); prefill rows keep 4.
def launch_add_rmsnorm(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor, eps: float,
                       pack: bool = False, pdl: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """-> (x + y, the norm, and with `pack` the norm as [T, H/8, 4] int32 f16 pairs, else None)."""
    t, h = x.shape
    total = torch.empty_like(x) if y is not None else x
    out = torch.empty_like(x)
    packed = torch.empty(t, h // 8, 4, dtype=torch.int32, device=x.device) if pack else None
    packed_f16 = packed.view(torch.float16) if packed is not None else out
    yy = y if y is not None else x
    j = yy.shape[1] if yy.dim() == 3 else 1
    assert yy.stride(-1) == 1
    _add_rmsnorm_kernel[(t,)](x, yy, scale, total, out, packed_f16, x.stride(0), yy.stride(0),
                              yy.stride(1) if j > 1 else 0, total.stride(0), out.stride(0), packed_f16.stride(0),
                              float(eps), H=h, BLOCK=triton.next_power_of_2(h), HAS_Y=y is not None, J=j, PACK=pack,
                              num_warps=16 if t <= 64 else 4, **launch_args(x, pdl))
    return total, out, packed


def launch_rope_write_kv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                         v_cache: torch.Tensor, slots: torch.Tensor, heads: int, pdl: bool = False) -> torch.Tensor:
    n = qkv.shape[0]
    kv_heads, d = k_cache.shape[-2:]
    assert qkv.stride(1) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous() and cos.stride() == sin.stride()
    q = torch.empty(n, heads, d, dtype=qkv.dtype, device=qkv.device)
    _rope_write_kv_kernel[(n, heads + 2 * kv_heads)](
        qkv, cos, sin, q, k_cache, v_cache, slots, qkv.stride(0), cos.stride(0), q.stride(0),
        HEADS=heads, KV=kv_heads, D=d, num_warps=1, **launch_args(qkv, pdl),
    )
    return q

