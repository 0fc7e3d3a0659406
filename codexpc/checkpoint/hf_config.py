"""The Hugging Face layout's config.json (transformers' GptOssConfig) <-> ModelConfig.

Written as the published gpt-oss repositories write it (legacy `rope_scaling` + `rope_theta`);
read in that form and in transformers 5's `rope_parameters` form. Anything our engine would
compute differently from transformers (another SwiGLU alpha, a window on other layers, tied
embeddings, unquantized experts) is refused rather than silently ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from codexpc.checkpoint import validate
from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

SWIGLU_ALPHA = 1.702
MODULES_NOT_CONVERTED = [
    "model.layers.*.self_attn",
    "model.layers.*.mlp.router",
    "model.embed_tokens",
    "lm_head",
]


def layer_types(n_layers: int) -> list[str]:
    # gpt-oss alternates: even layers slide, odd layers see everything (ModelConfig.is_sliding)
    return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)]


def config_json(config: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": 200002,
        "experts_per_token": config.experts_per_token,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "hidden_size": config.hidden_size,
        "initial_context_length": config.initial_context_length,
        "initializer_range": 0.02,
        "intermediate_size": config.intermediate_size,
        "layer_types": layer_types(config.num_hidden_layers),
        "max_position_embeddings": config.context_length,
        "model_type": "gpt_oss",
        "num_attention_heads": config.num_attention_heads,
        "num_experts_per_tok": config.experts_per_token,
        "num_hidden_layers": config.num_hidden_layers,
        "num_key_value_heads": config.num_key_value_heads,
        "num_local_experts": config.num_experts,
        "output_router_logits": False,
        "pad_token_id": 199999,
        "quantization_config": {"modules_to_not_convert": MODULES_NOT_CONVERTED, "quant_method": "mxfp4"},
        "rms_norm_eps": config.rms_norm_eps,
        "rope_scaling": {
            "beta_fast": config.rope_ntk_beta,
            "beta_slow": config.rope_ntk_alpha,
            "factor": config.rope_scaling_factor,
            "original_max_position_embeddings": config.initial_context_length,
            "rope_type": "yarn",
            "truncate": False,  # gpt-oss does not round YaRN's correction range
        },
        "rope_theta": config.rope_theta,
        "router_aux_loss_coef": 0.9,
        "sliding_window": config.sliding_window,
        "swiglu_limit": config.swiglu_limit,
        "tie_word_embeddings": False,
        "use_cache": True,
        "vocab_size": config.vocab_size,
    }


def generation_config_json() -> dict[str, Any]:
    """As published: stop on <|return|>, <|endoftext|> and <|call|>."""
    return {
        "bos_token_id": 199998,
        "do_sample": True,
        "eos_token_id": [200002, 199999, 200012],
        "pad_token_id": 199999,
    }


def _rope(path: Path, data: dict[str, Any]) -> tuple[dict[str, Any], float]:
    rope = data.get("rope_parameters") or data.get("rope_scaling")
    if not isinstance(rope, dict):
        raise validate.fail(path, "config has no rope_scaling (gpt-oss uses YaRN)")
    if rope.get("rope_type", rope.get("type")) != "yarn":
        raise validate.fail(path, f"rope type {rope.get('rope_type')!r} is not 'yarn'")
    if "truncate" not in rope:
        # transformers would then round YaRN's correction range; gpt-oss (and codexpc) does not
        log.warning("%s: rope_scaling has no 'truncate'; following gpt-oss (no rounding)", path)
    elif rope["truncate"] is not False:
        raise validate.fail(path, "rope_scaling.truncate must be false for gpt-oss's YaRN")
    theta = rope.get("rope_theta", data.get("rope_theta"))
    return rope, validate.number(path, {"rope_theta": theta}, "rope_theta", kind=float)


def _refuse_unsupported(path: Path, data: dict[str, Any], n_layers: int) -> None:
    if data.get("model_type") != "gpt_oss":
        raise validate.fail(path, f"model_type {data.get('model_type')!r} is not 'gpt_oss'")
    quant = data.get("quantization_config")
    if not isinstance(quant, dict) or quant.get("quant_method") != "mxfp4":
        raise validate.fail(
            path, "quantization_config.quant_method is not 'mxfp4' (only MXFP4 experts are supported)"
        )
    if data.get("layer_types") is not None and data["layer_types"] != layer_types(n_layers):
        raise validate.fail(path, "layer_types do not alternate sliding/full attention starting with sliding")
    if data.get("tie_word_embeddings", False) or data.get("attention_bias", True) is not True:
        raise validate.fail(path, "tied embeddings or attention without bias are not gpt-oss")
    if float(data.get("swiglu_alpha", SWIGLU_ALPHA)) != SWIGLU_ALPHA:
        raise validate.fail(path, f"swiglu_alpha {data['swiglu_alpha']} is not gpt-oss's {SWIGLU_ALPHA}")


def _experts_per_token(path: Path, data: dict[str, Any]) -> int:
    hf = data.get("num_experts_per_tok")
    ref = data.get("experts_per_token")
    if hf is not None and ref is not None and hf != ref:
        raise validate.fail(path, f"num_experts_per_tok = {hf} but experts_per_token = {ref}")
    return validate.number(path, {"k": hf if hf is not None else ref}, "k")


def parse_config(path: Path) -> ModelConfig:
    data = validate.json_object(path)
    n_layers = validate.number(path, data, "num_hidden_layers")
    _refuse_unsupported(path, data, n_layers)
    rope, theta = _rope(path, data)
    initial = validate.number(path, rope, "original_max_position_embeddings")
    if data.get("initial_context_length", initial) != initial:
        raise validate.fail(
            path, "initial_context_length disagrees with rope original_max_position_embeddings"
        )
    experts = data.get("num_local_experts", data.get("num_experts"))
    fields: dict[str, Any] = {
        "num_hidden_layers": n_layers,
        "num_experts": validate.number(path, {"num_local_experts": experts}, "num_local_experts"),
        "experts_per_token": _experts_per_token(path, data),
        "vocab_size": validate.number(path, data, "vocab_size"),
        "hidden_size": validate.number(path, data, "hidden_size"),
        "intermediate_size": validate.number(path, data, "intermediate_size"),
        "swiglu_limit": validate.number(path, data, "swiglu_limit", 7.0, kind=float),
        "head_dim": validate.number(path, data, "head_dim"),
        "num_attention_heads": validate.number(path, data, "num_attention_heads"),
        "num_key_value_heads": validate.number(path, data, "num_key_value_heads"),
        "sliding_window": validate.number(path, data, "sliding_window"),
        "initial_context_length": initial,
        "rope_theta": theta,
        "rope_scaling_factor": validate.number(path, rope, "factor", kind=float),
        "rope_ntk_alpha": validate.number(path, rope, "beta_slow", kind=float),
        "rope_ntk_beta": validate.number(path, rope, "beta_fast", kind=float),
        "rms_norm_eps": validate.number(path, data, "rms_norm_eps", 1e-5, kind=float),
        "context_length": validate.number(path, data, "max_position_embeddings"),
    }
    return validate.build_config(path, fields)
