"""The model's shape: one frozen dataclass, built once from a checkpoint's config.json.

Not the daemon's configuration (listeners, models, limits): that is `codexpc.config`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    num_hidden_layers: int = 24
    num_experts: int = 32
    experts_per_token: int = 4
    vocab_size: int = 201088
    hidden_size: int = 2880
    intermediate_size: int = 2880  # width of one expert
    swiglu_limit: float = 7.0
    head_dim: int = 64
    num_attention_heads: int = 64
    num_key_value_heads: int = 8
    sliding_window: int = 128  # on even layers (0, 2, ...); odd layers attend to everything
    initial_context_length: int = 4096  # YaRN's original context
    rope_theta: float = 150000.0
    rope_scaling_factor: float = 32.0
    rope_ntk_alpha: float = 1.0
    rope_ntk_beta: float = 32.0
    rms_norm_eps: float = 1e-5
    context_length: int = 131072

    def __post_init__(self) -> None:
        assert self.num_attention_heads % self.num_key_value_heads == 0
        assert self.experts_per_token <= self.num_experts

    @property
    def q_per_kv(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    def is_sliding(self, layer: int) -> bool:
        # gpt-oss alternates: even layers use the sliding window, odd layers full attention.
        return layer % 2 == 0


GPT_OSS_20B = ModelConfig()
GPT_OSS_120B = ModelConfig(num_hidden_layers=36, num_experts=128)
# A tiny model for tests: seconds on a CPU, still longer prompts than the window.
TINY = ModelConfig(
    num_hidden_layers=4,
    num_experts=4,
    experts_per_token=2,
    hidden_size=64,
    intermediate_size=64,
    head_dim=16,
    num_attention_heads=4,
    num_key_value_heads=2,
    sliding_window=8,
    initial_context_length=64,
    context_length=32768,  # Codex prompts are 10k+ tokens; the tiny model must take them
)
