"""The enumerations and ranges of a Responses request (CreateResponse), one table each.

Copied from OpenAI's published description (../shared/specs/openai-openapi.json) rather than
read from it, since the daemon must not need that file at run time;
tests/test_request_checks.py compares every row with the document, so a new spec shows what
changed. Where codexpc deliberately differs from the document, DEVIATIONS says so and why.
"""

from __future__ import annotations

# param -> the values the published schema allows (the string branch of each field).
ENUMS: dict[str, tuple[str, ...]] = {
    "truncation": ("auto", "disabled"),
    "service_tier": ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast"),
    "prompt_cache_retention": ("in_memory", "24h"),
    "tool_choice": ("none", "auto", "required"),
    "reasoning.effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "reasoning.summary": ("auto", "concise", "detailed"),
    "reasoning.generate_summary": ("auto", "concise", "detailed"),
    "text.verbosity": ("low", "medium", "high"),
    "text.format.type": ("text", "json_schema", "json_object"),
    "include[]": ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
                  "message.input_image.image_url", "computer_call_output.output.image_url",
                  "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs"),
    "tools[].type": ("function", "file_search", "computer", "computer_use_preview", "web_search",
                     "web_search_2025_08_26", "mcp", "code_interpreter", "programmatic_tool_calling",
                     "image_generation", "local_shell", "shell", "custom", "namespace", "tool_search",
                     "web_search_preview", "web_search_preview_2025_03_11", "apply_patch"),
}

# param -> (minimum, maximum), None: unbounded on that side; integers where INTEGERS says so.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "top_logprobs": (0, 20),
    "max_output_tokens": (1, None),
    "max_tool_calls": (0, None),
}
INTEGERS = frozenset({"top_logprobs", "max_output_tokens", "max_tool_calls"})

# param -> the longest string the published schema allows.
MAX_LENGTHS: dict[str, int] = {"safety_identifier": 64}

# Metadata: "16 key-value pairs; keys at most 64 characters, values at most 512".
METADATA_MAX_KEYS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512

# Where codexpc knowingly accepts more than the published document.
DEVIATIONS: dict[str, str] = {
    # The document says minimum 16; a local model honours any cap, and short caps make cheap tests.
    "max_output_tokens": "any positive integer (the document: at least 16)",
    # The document gives no bound; a negative count of tool calls has no meaning.
    "max_tool_calls": "zero or more (the document: any integer)",
}

BOOLEANS = ("stream", "store", "background", "parallel_tool_calls")
STRINGS = ("previous_response_id", "prompt_cache_key", "safety_identifier", "user", "model")
OBJECTS = ("text", "reasoning", "prompt", "stream_options", "prompt_cache_options", "moderation")
