"""The "vllm" engine: codexpc in front, vLLM servers doing the compute (docs/vllm.md).

wire.py (vLLM's request and chunk formats) -> sse.py (reading the stream) -> stream.py (one
attempt on one back end) -> generation.py (failover, TokenEvents) -> engine.py (the contract);
backend.py (each server's state and backoff), router.py (which server), probe.py (at load).
"""

from codexpc.engine.vllm.engine import VllmEngine, build_vllm_engine

__all__ = ["VllmEngine", "build_vllm_engine"]
