"""A loaded model's constrained decoding: its llguidance tokenizer, and each request's turn
constraint from what the request offers (tools) and asks (text format, tool_choice).

The daemon builds one Constrainer beside each engine that applies token masks (the paged
engine: EngineInfo.mask_vocab_size) when the model's `constrained_decoding` setting is on (the
default); the session asks it for a Constraint per request, in the same worker thread that
renders the prompt (compiling a new set of tools takes milliseconds to tens of them; a repeat
is a cache hit, compile.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import llguidance

from codexpc.constrain.compile import constraint_for
from codexpc.constrain.matcher import Constraint
from codexpc.constrain.spec import FinalFormat, JsonBody
from codexpc.constrain.tokenizer import load_tokenizer
from codexpc.engine.api import EngineInfo
from codexpc.harmony.tools import ToolRegistry

log = logging.getLogger(__name__)

# `text.format` of type json_object: any JSON object (what OpenAI's JSON mode promises).
JSON_OBJECT = JsonBody({"type": "object"})


class Constrainer:
    def __init__(self, tokenizer: llguidance.LLTokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def for_engine(cls, info: EngineInfo, enabled: bool, *, vocab: Path | None = None,
                   checkpoint: Path | None = None) -> Constrainer | None:
        """None when the model's setting is off or the engine takes no masks (it then serves
        unconstrained, and the decoder's validation is what is left)."""
        if not enabled:
            log.info("constrained decoding off for %s (its constrained_decoding setting)", info.model)
            return None
        if info.mask_vocab_size is None:
            log.info("constrained decoding unavailable on engine %s: it applies no token masks", info.kind)
            return None
        started = time.monotonic()
        tokenizer = load_tokenizer(info.mask_vocab_size, explicit=vocab, checkpoint=checkpoint)
        log.info("constrained decoding on for %s (tokenizer built in %.1fs)", info.model, time.monotonic() - started)
        return cls(tokenizer)

    def constraint(self, registry: ToolRegistry, text_format: Any, tool_choice: Any = "auto") -> Constraint:
        """The turn's constraint. `text_format`: server/request.py's TextFormat (duck-typed, so
        this package does not import the server). Raises ConstraintError (a 400)."""
        return constraint_for(registry, final_format(text_format), self.tokenizer, tool_choice)


def final_format(text_format: Any) -> FinalFormat | None:
    """The final answer's constraint from a parsed TextFormat (type, name, schema, strict)."""
    kind = getattr(text_format, "type", "text")
    if kind == "json_object":
        return FinalFormat(JSON_OBJECT, "json_object")
    if kind == "json_schema":
        return FinalFormat(JsonBody(text_format.schema or {}), text_format.name or "response", strict=text_format.strict)
    return None
