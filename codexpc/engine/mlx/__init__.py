"""The MLX engine: gpt-oss on Apple's MLX (Metal on Apple Silicon, its CPU build elsewhere).

platform.py  which MLX device a configured device name means, and whether MLX is here at all
weights.py   a codexpc checkpoint (any layout) into MLX arrays, experts kept MXFP4
model.py     the transformer as MLX modules (canonical names, gpt-oss's YaRN, sinks, MXFP4 experts)
kv_cache.py  one sequence's K/V, and the pool of finished sequences the next turn reuses
budget.py    how many tokens of K/V fit in the free (unified) memory
decode.py    prefill and the token loop of one sequence: sampling, stop, length, context
engine.py    MLXEngine: the worker thread, the queue, the Engine contract
"""
