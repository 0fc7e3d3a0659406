"""Images in a Responses request: gpt-oss reads text only, and the user must hear so.

Two ways an image reaches codexpc from Codex (`codex exec --image FILE`, a pasted screenshot):
- Codex knows the model reads text only (codexpc's model catalog says `input_modalities:
  ["text"]`): Codex itself swaps the image for three text parts, `<image name=[Image #1]
  path="…">`, `image content omitted because you do not support image input`, `</image>`
  (0.140–0.171, core/src/context_manager/normalize.rs). The model would answer without the
  image and the user would never know;
- Codex does not know (no catalog, `--oss`): the image arrives as an `input_image` part.

Either way, in the turn's own user message (the last one) the request is refused with a 400
that names the image: Codex shows that error and ends the turn. In earlier messages (a thread
resumed from a model that reads images) an image becomes a placeholder: refusing those would
end the thread for good.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from codexpc.errors import UnsupportedContentError
from codexpc.harmony.content import IMAGE_PARTS

CODEX_OMITTED = "image content omitted because you do not support image input"
# What an image is called in the text part Codex puts before the omission.
_CODEX_IMAGE_TAG = re.compile(r'<image name=(?P<name>[^>]*?)(?: path="(?P<path>[^"]*)")?>')


def last_user_message(items: Sequence[Any]) -> int | None:
    """The index of the request's last user message (the turn's own input), if any."""
    for i in range(len(items) - 1, -1, -1):
        item = items[i]
        if isinstance(item, Mapping) and item.get("role") == "user" and item.get("type", "message") == "message":
            return i
    return None


def refuse_images_of_this_turn(items: Sequence[Any]) -> None:
    """UnsupportedContentError when the turn's user message carries an image, or Codex's note
    that it left one out."""
    index = last_user_message(items)
    if index is None:
        return
    content = items[index].get("content")
    if not isinstance(content, list):
        return
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            continue  # the renderer names a malformed part
        where = f"input[{index}].content[{j}]"
        if part.get("type") in IMAGE_PARTS:
            raise UnsupportedContentError(_refusal("an image", "was sent"), param=where)
        if part.get("text") == CODEX_OMITTED:
            raise UnsupportedContentError(_refusal(_codex_name(content[:j]), "was left out by Codex"), param=where)


def _codex_name(before: Sequence[Any]) -> str:
    for part in reversed(before):
        text = part.get("text") if isinstance(part, Mapping) else None
        found = _CODEX_IMAGE_TAG.fullmatch(text.strip()) if isinstance(text, str) else None
        if found:
            path = found.group("path")
            return f"the image {found.group('name')}" + (f" ({path})" if path else "")
    return "an image"


def _refusal(image: str, what: str) -> str:
    return (f"this model reads text only: {image} {what} and cannot be read. "
            "Describe what it shows in words, or ask a model that reads images.")
