"""A trainable float twin of codexpc's gpt-oss (codexpc/engine/model.py), batched, for CPU training.

The maths is the engine's: the same RoPE (YaRN), sinks, sliding window, top-k softmax routing and
clamped swiglu, reused from the engine's module where it can be. What differs is what training
needs:
- expert weights are floats; the forward pass sees them quantized to MXFP4 (a straight-through
  estimator), so the exported MXFP4 experts are the weights the model was trained with;
- the embedding is a fixed random table plus a trained delta on the tokens the prompts use, and
  the unembedding has rows only for the tokens the answers use: every other row is zero, so its
  logit is exactly 0 and the full-vocabulary softmax costs a constant (see `loss`).

Shapes: B batch, T tokens, H hidden, V vocabulary, E experts, I expert width, D head dim.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from codexpc.engine.model import RMSNorm, Rotary, apply_rotary, swiglu
from codexpc.engine.model_config import ModelConfig
from codexpc.engine.mxfp4 import dequantize, quantize


def fake_mxfp4(weight: torch.Tensor) -> torch.Tensor:
    """The weight as MXFP4 would store it, with the gradient passed straight through."""
    blocks, scales = quantize(weight.detach())
    return weight + (dequantize(blocks, scales, weight.dtype) - weight).detach()


def _normal(generator: torch.Generator, *shape: int, std: float, mean: float = 0.0) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape, generator=generator) * std + mean)


def sink_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor) -> torch.Tensor:
    """Causal attention with gpt-oss's sinks through one fused SDPA call. q, k, v [B, T, heads, D].

    gpt-oss quirk: each head has a learned sink logit, an extra softmax column whose value is zero.
    SDPA knows no sinks, so the sink becomes a real key in front of the others: queries get an extra
    dimension worth 1, real keys 0 there, the sink key `sink * sqrt(D)` there (so its score, scaled
    by 1/sqrt(D), is the sink) and a zero value. A dummy query in front keeps the causal mask aligned.
    Every head dimension gets the extra column, value included: SDPA's fused CPU kernel needs equal ones.
    """
    b, t, heads, d = q.shape
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [B, heads, T, D]
    q = torch.cat((q.new_zeros(b, heads, 1, d), q), dim=2)
    q = torch.cat((q, q.new_ones(b, heads, t + 1, 1)), dim=-1)  # [B, heads, T + 1, D + 1]
    sink_key = torch.cat((k.new_zeros(heads, d), sinks[:, None] * math.sqrt(d)), dim=-1)[None, :, None].expand(b, -1, -1, -1)
    k = torch.cat((sink_key, torch.cat((k, k.new_zeros(b, heads, t, 1)), dim=-1)), dim=2)
    v = torch.cat((v.new_zeros(b, heads, 1, d + 1), torch.cat((v, v.new_zeros(b, heads, t, 1)), dim=-1)), dim=2)
    out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(d))
    return out[:, :, 1:, :d].transpose(1, 2)  # [B, T, heads, D]


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor, window: int) -> torch.Tensor:
    """sink_attention for a sliding-window layer, in O(T * window): q, k, v [B, T, heads, D]."""
    b, t, heads, d = q.shape
    # gpt-oss quirk: the window (even layers) is exactly `window` positions, the query's own included.
    pad = k.new_zeros(b, window - 1, heads, d)
    k_win = torch.cat((pad, k), dim=1).unfold(1, window, 1)  # [B, T, heads, D, W]: keys t-W+1 .. t
    v_win = torch.cat((pad, v), dim=1).unfold(1, window, 1)
    scores = torch.einsum("bthd,bthdw->bthw", q, k_win) / math.sqrt(d)  # [B, T, heads, W]
    key_pos = torch.arange(t, device=q.device)[:, None] - window + 1 + torch.arange(window, device=q.device)
    scores = scores.masked_fill((key_pos < 0)[None, :, None, :], -math.inf)  # before the first token
    sink = sinks.reshape(1, 1, heads, 1).expand(b, t, heads, 1)
    weights = torch.softmax(torch.cat((scores, sink), dim=-1), dim=-1)[..., :-1]
    return torch.einsum("bthw,bthdw->bthd", weights, v_win)


class TrainAttention(nn.Module):
    def __init__(self, c: ModelConfig, layer: int, g: torch.Generator) -> None:
        super().__init__()
        self.c = c
        self.window = c.sliding_window if c.is_sliding(layer) else 0
        qkv = c.head_dim * (c.num_attention_heads + 2 * c.num_key_value_heads)
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.qkv_weight = _normal(g, qkv, c.hidden_size, std=c.hidden_size**-0.5)
        self.qkv_bias = nn.Parameter(torch.zeros(qkv))
        self.sinks = nn.Parameter(torch.zeros(c.num_attention_heads))
        self.out_weight = _normal(g, c.hidden_size, c.head_dim * c.num_attention_heads, std=0.5 / c.hidden_size**0.5)
        self.out_bias = nn.Parameter(torch.zeros(c.hidden_size))

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        c, (b, t, _) = self.c, x.shape
        qkv = nn.functional.linear(self.norm(x), self.qkv_weight, self.qkv_bias)  # [B, T, (heads + 2 KV) * D]
        q_end, k_end = c.num_attention_heads * c.head_dim, (c.num_attention_heads + c.num_key_value_heads) * c.head_dim
        q = apply_rotary(qkv[..., :q_end].reshape(b, t, c.num_attention_heads, c.head_dim), *rope)
        k = apply_rotary(qkv[..., q_end:k_end].reshape(b, t, c.num_key_value_heads, c.head_dim), *rope)
        v = qkv[..., k_end:].reshape(b, t, c.num_key_value_heads, c.head_dim)
        # GQA: each key/value head serves q_per_kv consecutive query heads.
        k, v = k.repeat_interleave(c.q_per_kv, dim=2), v.repeat_interleave(c.q_per_kv, dim=2)
        if self.window:
            attn = window_attention(q, k, v, self.sinks, self.window)  # [B, T, heads, D]
        else:
            attn = sink_attention(q, k, v, self.sinks)
        return x + nn.functional.linear(attn.reshape(b, t, -1), self.out_weight, self.out_bias)


class TrainMLP(nn.Module):
    def __init__(self, c: ModelConfig, g: torch.Generator) -> None:
        super().__init__()
        self.c = c
        e, h, i = c.num_experts, c.hidden_size, c.intermediate_size
        self.norm = RMSNorm(h, c.rms_norm_eps)
        self.gate_weight = _normal(g, e, h, std=h**-0.5)
        self.gate_bias = nn.Parameter(torch.zeros(e))
        self.mlp1_weight = _normal(g, e, 2 * i, h, std=h**-0.5)  # rows interleave gate and up
        self.mlp1_bias = nn.Parameter(torch.zeros(e, 2 * i))
        self.mlp2_weight = _normal(g, e, h, i, std=0.5 / i**0.5)
        self.mlp2_bias = nn.Parameter(torch.zeros(e, h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.norm(x)
        logits = nn.functional.linear(t, self.gate_weight, self.gate_bias)  # [B, T, E]
        top = torch.topk(logits, k=self.c.experts_per_token, dim=-1, sorted=True)
        # gpt-oss quirk: softmax over the k chosen logits only.
        mix = torch.zeros_like(logits).scatter(-1, top.indices, torch.softmax(top.values, dim=-1))  # [B, T, E]
        w1, w2 = fake_mxfp4(self.mlp1_weight), fake_mxfp4(self.mlp2_weight)
        flat, mix = t.reshape(-1, t.shape[-1]), mix.reshape(-1, mix.shape[-1])  # [B*T, H], [B*T, E]
        out = torch.zeros_like(flat)
        for e in range(self.c.num_experts):
            rows = (top.indices.reshape(-1, self.c.experts_per_token) == e).any(dim=-1).nonzero().squeeze(1)
            h = swiglu(flat[rows] @ w1[e].T + self.mlp1_bias[e], self.c.swiglu_limit)  # [n, I]
            y = h @ w2[e].T + self.mlp2_bias[e]  # [n, H]
            # index_put_ rather than index_add_: the same sum, and index_add_ is slow on CPUs.
            out = out.index_put((rows,), y * mix[rows, e, None], accumulate=True)
        return x + out.reshape(x.shape)


class TrainModel(nn.Module):
    def __init__(self, c: ModelConfig, input_ids: list[int], output_ids: list[int], seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c = c
        self.rotary = Rotary(c)
        # Fixed random rows for every token (the tokens the prompts never or rarely show), plus a
        # trained delta for the tokens they use: a 201088 x H gradient per step would cost more
        # than the whole rest of the model.
        self.register_buffer("embedding_base", torch.randn(c.vocab_size, c.hidden_size, generator=g))
        index = torch.full((c.vocab_size,), -1, dtype=torch.long)
        index[torch.tensor(input_ids)] = torch.arange(len(input_ids))
        self.register_buffer("input_index", index)
        self.embedding_delta = nn.Parameter(torch.zeros(len(input_ids), c.hidden_size))
        self.block_attn = nn.ModuleList(TrainAttention(c, n, g) for n in range(c.num_hidden_layers))
        self.block_mlp = nn.ModuleList(TrainMLP(c, g) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.register_buffer("output_ids", torch.tensor(output_ids))
        self.unembedding_rows = _normal(g, len(output_ids), c.hidden_size, std=c.hidden_size**-0.5)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, H]
        rows = self.input_index[tokens]
        delta = self.embedding_delta[rows.clamp(min=0)] * (rows >= 0).unsqueeze(-1)
        return self.embedding_base[tokens] + delta

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, H] after the final norm
        x = self.embed(tokens)
        rope = self.rotary.cos_sin(0, tokens.shape[1], tokens.device)
        for attn, mlp in zip(self.block_attn, self.block_mlp, strict=True):
            x = mlp(attn(x, rope))
        return self.norm(x)

    def output_logits(self, h: torch.Tensor) -> torch.Tensor:  # [N, H] -> [N, len(output_ids)]
        return h @ self.unembedding_rows.T

    def loss(self, h: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the whole vocabulary, weighted (weights [N] sum to 1).

        h [N, H]; targets [N] as indices into output_ids. The V - K tokens without a row have
        logit 0 each: together one column of log(V - K).
        """
        logits = self.output_logits(h)  # [N, K]
        rest = math.log(self.c.vocab_size - logits.shape[1])
        full = torch.cat((logits, logits.new_full((logits.shape[0], 1), rest)), dim=-1)  # [N, K + 1]
        return (nn.functional.cross_entropy(full, targets, reduction="none") * weights).sum()
