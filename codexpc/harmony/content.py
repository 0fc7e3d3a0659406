"""Reading request JSON: typed access with errors that name the JSON path, and content parts.

Content parts other than text (images, files, audio) are refused with
UnsupportedContentError: gpt-oss reads text only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codexpc.errors import RequestError, UnsupportedContentError

# Text part types across the Responses API (input_text, output_text, refusal) and Chat
# Completions (text).
TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
# Part types a text-only model cannot take, from both APIs.
NON_TEXT_PARTS = ("input_image", "input_file", "input_audio", "image_url", "file", "image")
IMAGE_PARTS = ("input_image", "image_url", "image")


def as_mapping(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError("expected an object", param=param)
    return value


def as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise RequestError("expected a string", param=param)
    return value


def text_parts(content: Any, param: str, accepted: Sequence[str] = TEXT_PARTS,
               image_placeholder: str | None = None) -> list[str]:
    """The texts of a content field: a plain string, or a list of typed parts. An image part
    becomes `image_placeholder` where one is given, else it is refused."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise RequestError("content must be a string or a list of parts", param=param)
    texts: list[str] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = as_mapping(part, where).get("type")
        if kind in IMAGE_PARTS and image_placeholder is not None:
            texts.append(image_placeholder)
            continue
        if kind in NON_TEXT_PARTS:
            raise UnsupportedContentError(
                f"content parts of type {kind!r} are not supported: this model reads text only", param=where
            )
        if kind not in accepted:
            raise RequestError(f"unknown content part type {kind!r}", param=f"{where}.type")
        # A refusal carries its text under "refusal"; every other part under "text".
        texts.append(as_str(part.get("refusal" if kind == "refusal" else "text"), f"{where}.text"))
    return texts
