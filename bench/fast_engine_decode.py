"""Decode figures of the fast engine, v3's path against the current one, in one process.

    python bench/fast_engine_decode.py [--parts attention,engine,moe]

attention: one layer's decode attention at 1, 4 and 64 sequences, keys split or not.
moe: one MoE layer (gpt-oss-20b shapes, random MXFP4 experts) under a CUDA graph at a few
token counts: the row-block kernels against the GEMV pair (its tiles: bench/moe_gemv_probe.py).
engine: decode batch 1 and 64 through the engine's own loop and CUDA graphs, on random weights
made on the GPU (no checkpoint), with v3's per-layer path (patched in here) and with the
current fused one, keys split or not; batch 1 also at 16k context. Prints one table last.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fast_engine_kernels import graph_ms, random_experts, random_paged_batch  # noqa: E402
from bench.fast_engine_parts import CONFIG, DEV, Driver, decode_rate, random_model  # noqa: E402
from codexpc.engine.kernels import attention_triton  # noqa: E402
from codexpc.engine.kernels import moe_mxfp4 as moe_module  # noqa: E402
from codexpc.engine.kernels.attention import paged_attention, paged_attention_reference, write_kv  # noqa: E402
from codexpc.engine.kernels.moe_mxfp4 import moe_mxfp4, moe_mxfp4_slots, moe_reference  # noqa: E402
from codexpc.engine.model import Block, apply_rotary  # noqa: E402
from codexpc.engine.paged import model_runner  # noqa: E402
from codexpc.engine.paged.cache_sizing import CacheBudget  # noqa: E402
from codexpc.engine.paged.paged_model import PagedModel, StepInputs, rope  # noqa: E402

TABLE: list[str] = []


def record(name: str, value: float, unit: str) -> None:
    line = f"{name:<58} {value:10.1f} {unit}"
    TABLE.append(line)
    print(line, flush=True)


def expert_bytes(w) -> int:  # type: ignore[no-untyped-def]
    return w.w1_blocks[0].numel() + w.w1_scales[0].numel() + w.w2_blocks[0].numel() + w.w2_scales[0].numel()


def bench_moe() -> None:
    c = CONFIG
    w = random_experts(c)
    for t in (1, 8, 16):
        x = torch.randn(t, c.hidden_size, device=DEV, dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(c.num_experts, device=DEV)[:4] for _ in range(t)])
        wts = torch.softmax(torch.randn(t, 4, device=DEV), -1)
        ref = moe_reference(x, ids, wts, w).float()
        used = len(torch.unique(ids)) * expert_bytes(w)
        moe_module.GEMV_MAX_TOKENS, moe_module.MANY_TOKENS_KERNEL = 0, "rows"  # v4's row blocks
        ms = graph_ms(partial(moe_mxfp4_slots, x, ids, wts, w))
        moe_module.MANY_TOKENS_KERNEL = "scaled"
        record(f"MoE T={t} row blocks, slots unsummed ({used / ms / 1e6:.0f} GB/s)", ms * 1e3, "us")
        moe_module.GEMV_MAX_TOKENS = 64
        err = ((moe_mxfp4_slots(x, ids, wts, w).sum(1) - ref).norm() / ref.norm()).item()
        ms = graph_ms(partial(moe_mxfp4_slots, x, ids, wts, w))
        # The GEMV's tiles are swept by bench/moe_gemv_probe.py; here the engine's.
        record(f"MoE T={t} GEMV, engine tiles ({used / ms / 1e6:.0f} GB/s, err {err:.1e})", ms * 1e3, "us")
    moe_module.GEMV_MAX_TOKENS = 8


@torch.inference_mode()
def v3_forward(self: PagedModel, inputs: StepInputs) -> torch.Tensor:
    """v3's forward through the kernels (commit 8e5183f): one op at a time around them."""
    m, c = self.model, self.config
    x = m.embedding(inputs.tokens)
    cos, sin = rope(self._inv_freq, m.rotary.concentration, inputs.positions)
    heads, kv_heads, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    for layer, block in enumerate(m.block):
        assert isinstance(block, Block)
        attn, mlp = block.attn, block.mlp
        n = x.shape[0]
        qkv = attn.qkv(attn.norm(x))
        k_end = (heads + kv_heads) * d
        qk = apply_rotary(qkv[:, :k_end].reshape(n, heads + kv_heads, d), cos, sin)
        write_kv(self.cache.k[layer], self.cache.v[layer], qk[:, heads:], qkv[:, k_end:].reshape(n, kv_heads, d),
                 inputs.batch.slot_mapping)
        out = paged_attention(qk[:, :heads], self.cache.k[layer], self.cache.v[layer], attn.sinks, inputs.batch,
                              attn.window)
        x = x + attn.out(out)
        t = mlp.norm(x)
        top = torch.topk(mlp.gate(t), k=mlp.k, dim=-1, sorted=True)
        x = x + moe_mxfp4(t, top.indices, torch.softmax(top.values.float(), dim=-1), self._experts[layer])
    x = x[inputs.sample_rows]
    return m.unembedding(m.norm(x)).float()


def bench_attention() -> None:
    """Decode attention, one layer: keys split (flash-decoding) against one program per KV head."""
    for name, specs in (("1 x 16k", [(16383, 1)]), ("4 x 16k", [(16383, 1)] * 4), ("64 x 8k", [(8191, 1)] * 64)):
        q, kc, vc, batch = random_paged_batch(specs, 8, 8, 64, 16)
        sinks = torch.randn(64, device=DEV)
        ref = paged_attention_reference(q, kc, vc, sinks, batch, 0).float()
        kv_bytes = sum(c + n for c, n in specs) * 8 * 64 * 2 * 2
        for max_splits in (1, attention_triton.MAX_SPLITS):
            attention_triton.MAX_SPLITS = max_splits
            err = ((paged_attention(q, kc, vc, sinks, batch, 0).float() - ref).norm() / ref.norm()).item()
            ms = graph_ms(partial(paged_attention, q, kc, vc, sinks, batch, 0))
            record(f"attention decode {name}, splits <= {max_splits} ({kv_bytes / ms / 1e6:.0f} GB/s, err {err:.0e})",
                   ms * 1e3, "us")
        attention_triton.MAX_SPLITS = 32


def bench_engine() -> None:
    model = random_model(CONFIG)
    model_runner.WARMUP_TOKENS = (1,)  # decode only: the prefill kernels compile on the prompts
    budget = CacheBudget(16, 3200, 64, 8192, bytes_per_block=0)
    original = PagedModel.forward
    # (name, forward, key splits): the splits are fixed when the graphs are captured.
    for name, forward, splits in (("v3 path", v3_forward, 1), ("fused, keys unsplit", original, 1),
                                  ("fused", original, 32)):
        PagedModel.forward = forward  # type: ignore[method-assign]
        attention_triton.MAX_SPLITS = splits
        t0 = time.perf_counter()
        d = Driver(model, budget)
        print(f"{name}: runner built in {time.perf_counter() - t0:.1f} s", flush=True)
        record(f"decode batch 1, {name} (tok/s)", decode_rate(d, 1, 256, 100), "tok/s")
        record(f"decode 64 sequences, {name} (tok/s)", decode_rate(d, 64, 256, 30), "tok/s")
        record(f"decode batch 1 at 16k context, {name} (tok/s)", decode_rate(d, 1, 16384, 50), "tok/s")
        del d
        gc.collect()
        torch.cuda.empty_cache()
    PagedModel.forward = original  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="attention,engine,moe")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.time()
    if "attention" in parts:
        bench_attention()
    if "engine" in parts:
        bench_engine()
    if "moe" in parts:
        bench_moe()
    print(f"# {torch.cuda.get_device_name()}, total {time.time() - started:.0f} s")
    print("\n".join(TABLE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
