"""Grammar-constrained decoding: the model's turn cannot break Harmony, call a tool that was not
offered, or give a body its tool rejects (docs/constrained-decoding.md).

    tokenizer = load_tokenizer(n_vocab, checkpoint=...)         # once per loaded model
    constraint = constraint_for(registry, final_format, tokenizer)   # once per request
    SamplingParams(..., constraint=constraint)                  # the engine does the rest
"""

from codexpc.constrain.compile import ConstraintError, constraint_for
from codexpc.constrain.matcher import Constraint, SequenceMatcher
from codexpc.constrain.spec import (
    FinalFormat,
    JsonBody,
    LarkBody,
    ToolConstraint,
    final_format_from_chat,
    final_format_from_responses,
    tool_constraints,
)
from codexpc.constrain.tokenizer import load_tokenizer

__all__ = [
    "Constraint", "ConstraintError", "FinalFormat", "JsonBody", "LarkBody", "SequenceMatcher", "ToolConstraint",
    "constraint_for", "final_format_from_chat", "final_format_from_responses", "load_tokenizer", "tool_constraints",
]
