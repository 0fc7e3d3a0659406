"""Grammar-constrained decoding: the model's turn cannot break Harmony, call a tool that was not
offered, or give a body its tool rejects (docs/constrained-decoding.md).

    constrainer = Constrainer.for_engine(engine.info, enabled)    # once per loaded model
    constraint = constrainer.constraint(registry, text_format, tool_choice)   # once per request
    SamplingParams(..., constraint=constraint)                    # the engine does the rest
"""

from codexpc.constrain.compile import ConstraintError, constraint_for
from codexpc.constrain.matcher import Constraint, SequenceMatcher
from codexpc.constrain.spec import (
    FinalFormat,
    JsonBody,
    LarkBody,
    ToolConstraint,
    tool_constraints,
)
from codexpc.constrain.tokenizer import load_tokenizer
from codexpc.constrain.turn import Constrainer, final_format

__all__ = [
    "Constraint", "ConstraintError", "FinalFormat", "JsonBody", "LarkBody", "SequenceMatcher", "ToolConstraint",
    "Constrainer", "constraint_for", "final_format", "load_tokenizer", "tool_constraints",
]
