"""Each Triton kernel against its plain PyTorch reference, on fresh random inputs.

On a CUDA GPU: bf16 at gpt-oss-20b's shapes (marked `gpu`). Without one, where Triton is
installed, the same kernels run in Triton's CPU interpreter in fp32 at tiny shapes (seconds),
which checks their indexing exactly; where Triton is missing everything here is skipped.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    # Must be set before the kernel modules import triton: jit reads it when decorating.
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton")

from codexpc.engine.kernels.attention import (  # noqa: E402
    PagedBatch,
    paged_attention,
    paged_attention_reference,
    write_kv,
)
from codexpc.engine.kernels.fused import (  # noqa: E402
    add_rmsnorm,
    add_rmsnorm_packed,
    add_rmsnorm_reference,
    linear,
    rope_write_kv,
    rope_write_kv_reference,
)
from codexpc.engine.kernels.moe_mxfp4 import (  # noqa: E402
    ExpertWeights,
    moe_mxfp4,
    moe_mxfp4_slots,
    moe_reference,
)
from codexpc.engine.kernels.routing import route, route_reference, router, router_reference  # noqa: E402
from codexpc.engine.paged.kernel_plan import KernelPlan  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
# Triton's interpreter computes bf16 wrongly (numpy has no bf16): fp32 there, bf16 on GPUs.
DTYPE = torch.bfloat16 if HAS_CUDA else torch.float32
BOUND = 2e-2 if HAS_CUDA else 1e-5  # ||out - ref|| / ||ref||
# The MoE GEMV kernels (a few tokens) multiply in f16 by design: in fp32 that is what they lose.
GEMV_BOUND = 2e-2 if HAS_CUDA else 1e-3
# The engine's kernels, run one by one (no graphs to capture here, no start-up compiles).
PLAN = KernelPlan(cuda_graphs=False, run_ahead=False, warmup_tokens=())


def moe_bound(tokens: int, plan: KernelPlan = PLAN) -> float:
    return GEMV_BOUND if tokens <= plan.moe_gemv_max_tokens else BOUND


def gpu_or_interpreter(test):  # type: ignore[no-untyped-def]
    """Mark `gpu` where the test runs on one (so `-m "not gpu"` skips only the slow case)."""
    return pytest.mark.gpu(test) if HAS_CUDA else test


@pytest.fixture(autouse=True)
def _interpreter_numpy2() -> None:
    """Triton 3.6's interpreter turns loop bounds into ints in a way numpy 2.4 refuses."""
    if HAS_CUDA:
        return
    import triton.runtime.interpreter as ti

    if getattr(ti, "_codexpc_patched", False):
        return
    original = ti._patch_lang_tensor

    def patched(tensor, scope):  # type: ignore[no-untyped-def]
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    ti._patch_lang_tensor = patched
    ti._codexpc_patched = True


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert not torch.isnan(out).any()
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def random_mxfp4(e: int, rows: int, cols: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Any bytes are valid MXFP4; scales near 2^-6 keep the products' sizes realistic."""
    blocks = torch.randint(0, 256, (e, rows, cols // 32, 16), generator=g, dtype=torch.uint8)
    scales = torch.randint(117, 123, (e, rows, cols // 32), generator=g, dtype=torch.uint8)
    return blocks, scales


def random_experts(e: int, h: int, i: int, seed: int) -> ExpertWeights:
    g = torch.Generator().manual_seed(seed)
    w1b, w1s = random_mxfp4(e, 2 * i, h, g)
    w2b, w2s = random_mxfp4(e, h, i, g)
    b1 = torch.randn(e, 2 * i, generator=g) * 0.1
    b2 = torch.randn(e, h, generator=g) * 0.1
    return ExpertWeights(w1b.to(DEVICE), w1s.to(DEVICE), b1.to(DEVICE, DTYPE), w2b.to(DEVICE), w2s.to(DEVICE),
                         b2.to(DEVICE, DTYPE), limit=7.0)


def random_routing(t: int, e: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(t)])
    weights = torch.softmax(torch.randn(t, k, generator=g), dim=-1)
    return ids.to(DEVICE), weights.to(DEVICE)


SHAPES = [(2880, 2880, 32, 4)] if HAS_CUDA else [(64, 96, 4, 2)]  # hidden, width, experts, k
TOKENS = [1, 7, 64, 1000, 4200] if HAS_CUDA else [1, 5, 40]


# "dense": the bf16-copy row blocks at every size (the engine runs them from ~4k tokens on).
DENSE_EVERYWHERE = replace(PLAN, moe_gemv_max_tokens=0, moe_dense_min_slots_per_expert=0)


@gpu_or_interpreter
@pytest.mark.parametrize("variant", ["auto", "dense"])
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("shape", SHAPES)
def test_moe_mxfp4_matches_dequantize_then_matmul(tokens: int, shape: tuple[int, int, int, int], variant: str) -> None:
    h, i, e, k = shape
    w = random_experts(e, h, i, seed=tokens)
    ids, weights = random_routing(tokens, e, k, seed=tokens + 1)
    x = torch.randn(tokens, h, device=DEVICE).to(DTYPE)
    ref = moe_reference(x, ids, weights, w)
    out = moe_mxfp4(x, ids, weights, w, DENSE_EVERYWHERE if variant == "dense" else PLAN)
    assert out.shape == ref.shape
    assert rel_err(out, ref) < (BOUND if variant == "dense" else moe_bound(tokens))


@gpu_or_interpreter
@pytest.mark.parametrize("tokens", [1, 3, 9])
@pytest.mark.parametrize("shape", SHAPES)
def test_moe_slots_sum_to_the_reference(tokens: int, shape: tuple[int, int, int, int]) -> None:
    """The GEMV kernels (up to the plan's moe_gemv_max_tokens) and the kernels beyond, slots unsummed."""
    assert_slots_sum_to_the_reference(tokens, shape, seed=10 + tokens, plan=replace(PLAN, moe_gemv_max_tokens=4))


def assert_slots_sum_to_the_reference(tokens: int, shape: tuple[int, int, int, int], seed: int,
                                      plan: KernelPlan) -> None:
    h, i, e, k = shape
    w = random_experts(e, h, i, seed=seed)
    ids, weights = random_routing(tokens, e, k, seed=tokens)
    x = torch.randn(tokens, h, device=DEVICE).to(DTYPE)
    slots = moe_mxfp4_slots(x, ids, weights, w, plan)
    assert slots.shape == (tokens, k, h) and slots.dtype == torch.float32
    assert rel_err(slots.sum(dim=1), moe_reference(x, ids, weights, w)) < moe_bound(tokens, plan)


@gpu_or_interpreter
@pytest.mark.parametrize("tokens", [9, 64, 700] if HAS_CUDA else [9, 30])
@pytest.mark.parametrize("kernel", ["scaled", "dense_rows"])
@pytest.mark.parametrize("shape", SHAPES)
def test_many_token_kernels_sum_to_the_reference(tokens: int, kernel: str, shape: tuple[int, int, int, int]) -> None:
    """Past the GEMV sizes: the scaled-dot kernels (Triton's MXFP4 dot; in Triton's interpreter,
    which has none, their exact-decode branch: the same indexing) and the bf16-copy row blocks."""
    plan = PLAN if kernel == "scaled" else replace(PLAN, moe_dense_min_slots_per_expert=0)
    assert plan.moe_kernel(tokens, shape[2], shape[3]) == kernel
    assert_slots_sum_to_the_reference(tokens, shape, seed=20 + tokens, plan=plan)


@gpu_or_interpreter
@pytest.mark.parametrize("tokens,experts,block_m", [(1, 32, 16), (7, 32, 16), (64, 32, 16), (64, 128, 16),
                                                    (100, 32, 32), (3, 4, 16)])
def test_order_kernel_gives_the_torch_order(tokens: int, experts: int, block_m: int) -> None:
    from codexpc.engine.kernels.moe_mxfp4 import order_by_expert

    ids, _ = random_routing(tokens, experts, min(4, experts), seed=tokens + experts)
    ref = order_by_expert(ids, experts, block_m, kernel=False)
    out = order_by_expert(ids, experts, block_m, kernel=True)
    assert torch.equal(out.sorted_slots, ref.sorted_slots)
    assert torch.equal(out.block_expert, ref.block_expert)
    assert torch.equal(out.num_padded, ref.num_padded)


@gpu_or_interpreter
@pytest.mark.parametrize("add", ["none", "tensor", "slots"])
def test_add_rmsnorm_matches_the_reference(add: str) -> None:
    h = 2880 if HAS_CUDA else 96
    x = torch.randn(5, h, device=DEVICE).to(DTYPE)
    y = {"none": None, "tensor": torch.randn(5, h, device=DEVICE).to(DTYPE),
         "slots": torch.randn(5, 4, h, device=DEVICE)}[add]
    scale = torch.rand(h, device=DEVICE) + 0.5
    total, normed = add_rmsnorm(x, y, scale, 1e-5, PLAN)
    ref_total, ref_normed = add_rmsnorm_reference(x, y, scale, 1e-5)
    if add == "slots":  # fp32 sums in another order may round to the neighbouring bf16
        assert rel_err(total, ref_total) < 1e-2
    else:
        assert torch.equal(total, ref_total)
    assert rel_err(normed, ref_normed) < BOUND / 4


@gpu_or_interpreter
def test_add_rmsnorm_packed_writes_the_gemv_pairs() -> None:
    """The norm's second output is pack_activations of the norm (from fp32, so within f16's rounding)."""
    from codexpc.engine.kernels.moe_gemv_triton import pack_activations

    h = 2880 if HAS_CUDA else 96
    x = torch.randn(3, h, device=DEVICE).to(DTYPE)
    scale = torch.rand(h, device=DEVICE) + 0.5
    total, normed, packed = add_rmsnorm_packed(x, None, scale, 1e-5)
    want = pack_activations(add_rmsnorm_reference(x, None, scale, 1e-5)[1].float())
    assert packed.shape == want.shape == (3, h // 8, 4) and packed.dtype == torch.int32
    assert rel_err(packed.view(torch.float16), want.view(torch.float16)) < BOUND / 4 + 1e-3


def test_pack_activations_pairs_even_then_odd_columns() -> None:
    """Each word of 8 columns becomes the pairs (0, 2), (4, 6), (1, 3), (5, 7)."""
    from codexpc.engine.kernels.moe_gemv_triton import pack_activations

    a = torch.arange(16, dtype=torch.float32).view(1, 16)
    pairs = pack_activations(a).view(torch.float16).view(2, 4, 2).float()
    assert pairs[0].tolist() == [[0, 2], [4, 6], [1, 3], [5, 7]]
    assert pairs[1].tolist() == [[8, 10], [12, 14], [9, 11], [13, 15]]


@gpu_or_interpreter
def test_route_matches_topk_then_softmax() -> None:
    # Distinct logits (bf16 rounds random ones into ties, which either order may break).
    g = torch.Generator().manual_seed(0)
    logits = torch.stack([torch.randperm(32, generator=g) for _ in range(37)]).to(DEVICE, DTYPE) / 8 - 2
    ids, weights = route(logits, 4)
    ref_ids, ref_weights = route_reference(logits, 4)
    assert torch.equal(ids, ref_ids)
    assert rel_err(weights, ref_weights) < 1e-5


@gpu_or_interpreter
@pytest.mark.parametrize("shape", [(5120, 2880), (2880, 4096)] if HAS_CUDA else [(40, 96), (33, 70)])
def test_one_token_linear_matches_the_layer(shape: tuple[int, int]) -> None:
    n, k = shape
    layer = torch.nn.Linear(k, n).to(DEVICE, DTYPE)
    x = torch.randn(1, k, device=DEVICE).to(DTYPE)
    with torch.no_grad():
        assert rel_err(linear(x, layer, PLAN), layer(x)) < (1e-2 if HAS_CUDA else 1e-5)


@gpu_or_interpreter
@pytest.mark.parametrize("tokens", [1, 5, 64])
def test_router_matches_linear_then_route(tokens: int) -> None:
    h, e = (2880, 32) if HAS_CUDA else (96, 8)
    g = torch.Generator().manual_seed(tokens)
    x = torch.randn(tokens, h, generator=g).to(DEVICE, DTYPE)
    weight = (torch.randn(e, h, generator=g) * h ** -0.5).to(DEVICE, DTYPE)
    bias = (torch.randn(e, generator=g) * 0.1).to(DEVICE, DTYPE)
    ids, weights = router(x, weight, bias, 4, PLAN)
    ref_ids, ref_weights = router_reference(x, weight, bias, 4)
    # bf16 logits can tie, and a different summation order can then pick the other expert: allow
    # that on rare rows only, and require the same weights where the ids agree.
    same = (ids == ref_ids).all(dim=1)
    assert same.float().mean() >= (0.9 if HAS_CUDA else 1.0)
    assert rel_err(weights[same], ref_weights[same]) < 1e-2


@gpu_or_interpreter
def test_rope_write_kv_matches_the_reference() -> None:
    from codexpc.engine.model import Rotary
    from codexpc.engine.model_config import GPT_OSS_20B, TINY

    c = GPT_OSS_20B if HAS_CUDA else TINY
    heads, kv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    t, blocks, page = 7, 6, 4
    positions = torch.tensor([0, 1, 2, 900, 5000, 17, 3], device=DEVICE)
    rot = Rotary(c)
    cos, sin = rot.cos_sin(0, 6000, torch.device(DEVICE))
    cos, sin = cos[positions].contiguous(), sin[positions].contiguous()
    qkv = torch.randn(t, (heads + 2 * kv) * d, device=DEVICE).to(DTYPE)
    slots = torch.randperm(blocks * page, device=DEVICE)[:t]
    caches = [torch.zeros(blocks, page, kv, d, device=DEVICE, dtype=DTYPE) for _ in range(4)]
    q = rope_write_kv(qkv, cos, sin, caches[0], caches[1], slots, heads, PLAN)
    ref_q = rope_write_kv_reference(qkv, cos, sin, caches[2], caches[3], slots, heads)
    assert rel_err(q, ref_q) < BOUND / 4
    assert rel_err(caches[0], caches[2]) < BOUND / 4
    assert torch.equal(caches[1], caches[3])


def random_paged_batch(specs: list[tuple[int, int]], kv: int, qm: int, d: int, page: int, seed: int):  # type: ignore[no-untyped-def]
    """specs: (tokens already cached, new tokens) per sequence; blocks are scattered at random."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    num_blocks = sum(-(-(c + n) // page) for c, n in specs) + 3
    free = list(range(num_blocks))
    rng.shuffle(free)
    width = max(-(-(c + n) // page) for c, n in specs)
    tables, starts, lens, slots = [], [0], [], []
    for cached, new in specs:
        length = cached + new
        table = [free.pop() for _ in range(-(-length // page))]
        tables.append(table + [0] * (width - len(table)))
        starts.append(starts[-1] + new)
        lens.append(length)
        slots += [table[p // page] * page + p % page for p in range(cached, length)]
    k_cache = torch.randn(num_blocks, page, kv, d, device=DEVICE).to(DTYPE)
    v_cache = torch.randn(num_blocks, page, kv, d, device=DEVICE).to(DTYPE)
    batch = PagedBatch(
        torch.tensor(starts, dtype=torch.int32, device=DEVICE), torch.tensor(lens, dtype=torch.int32, device=DEVICE),
        torch.tensor(tables, dtype=torch.int32, device=DEVICE), torch.tensor(slots, device=DEVICE),
        max(n for _, n in specs), tuple(starts), tuple(lens),
    )
    t = starts[-1]
    q = torch.randn(t, kv * qm, d, device=DEVICE).to(DTYPE)
    write_kv(k_cache, v_cache, torch.randn(t, kv, d, device=DEVICE), torch.randn(t, kv, d, device=DEVICE),
             batch.slot_mapping)
    return q, k_cache, v_cache, batch


ATTN = (8, 8, 64, 16, 128) if HAS_CUDA else (2, 4, 16, 4, 8)  # KV, QM, D, page, window
BATCHES = {
    "decode": [(300, 1), (5, 1), (1000, 1), (0, 1)],
    "decode-long": [(16000, 1)] if HAS_CUDA else [(300, 1)],  # one sequence: keys split many ways
    "prefill": [(0, 700)] if HAS_CUDA else [(0, 37)],
    "mixed": [(0, 300), (2000, 1), (130, 70), (16, 1)] if HAS_CUDA else [(0, 30), (20, 1), (9, 7), (4, 1)],
}


@gpu_or_interpreter
@pytest.mark.parametrize("sliding", [False, True])
@pytest.mark.parametrize("name", sorted(BATCHES))
def test_paged_attention_matches_reference(name: str, sliding: bool) -> None:
    kv, qm, d, page, window = ATTN
    q, k_cache, v_cache, batch = random_paged_batch(BATCHES[name], kv, qm, d, page, seed=len(name))
    sinks = torch.randn(kv * qm, device=DEVICE)
    w = window if sliding else 0
    ref = paged_attention_reference(q, k_cache, v_cache, sinks, batch, w)
    out = paged_attention(q, k_cache, v_cache, sinks, batch, w)
    assert out.shape == ref.shape
    assert rel_err(out, ref) < BOUND


@gpu_or_interpreter
def test_paged_model_through_the_kernels_matches_the_reference_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The whole tiny model, one mixed prefill step then two decode steps: kernels vs reference."""
    from codexpc.checkpoint import open_checkpoint, write_checkpoint
    from codexpc.engine.api import SamplingParams
    from codexpc.engine.model_config import TINY
    from codexpc.engine.paged.block_manager import BlockManager
    from codexpc.engine.paged.cache_sizing import CacheBudget
    from codexpc.engine.paged.kernel_plan import REFERENCE
    from codexpc.engine.paged.model_runner import ModelRunner, build_host_step
    from codexpc.engine.paged.paged_model import PagedModel
    from codexpc.engine.paged.scheduler import Scheduler, SchedulerConfig
    from codexpc.engine.paged.sequence import Sequence
    from codexpc.engine.weights import load_model

    model = load_model(open_checkpoint(write_checkpoint(TINY, "original", tmp_path / "tiny")), torch.device(DEVICE))
    runner = ModelRunner.create(model, CacheBudget(16, 64, 8, 256, bytes_per_block=0), PLAN)
    reference = PagedModel(model, runner.model.cache, REFERENCE)  # the same cache, the reference path
    sched = Scheduler(SchedulerConfig(8, 256, TINY.context_length), BlockManager(64, 16))
    prompts = [[5, 17, 200000, 3, 99, 1234, 7, 7, 42, 1000, 11, 12, 13], [3, 1, 4, 1, 5], [9] * 40]
    for i, p in enumerate(prompts):
        sched.add(Sequence(f"g{i}", list(p), len(p), SamplingParams(temperature=0.0)))
    for _ in range(3):
        out = sched.schedule()
        inputs = runner._to_device(build_host_step(out, 16))
        fast = runner.model.forward(inputs)
        ref = reference.forward(inputs)
        assert rel_err(fast, ref) < GEMV_BOUND  # the decode steps' MoE is the f16 GEMV
        sched.update(out, {s.seq.request_id: t for s, t in zip(out.scheduled, ref.argmax(-1).tolist(), strict=True)})
