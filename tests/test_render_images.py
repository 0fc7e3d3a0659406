"""Images in a Responses request (codexpc/harmony/images.py): the turn's own image is refused
with a 400 that names it, Codex's note of an image it left out included; an older one becomes a
placeholder."""

from __future__ import annotations

from typing import Any

import pytest
from openai_harmony import HarmonyEncoding

from codexpc.errors import UnsupportedContentError
from codexpc.harmony.images import CODEX_OMITTED
from codexpc.harmony.render import IMAGE_PLACEHOLDER, RenderOptions, render_responses

OPTIONS = RenderOptions(current_date="2026-12-04")


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def _text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


IMAGE = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
# What Codex 0.140-0.171 send for `codex exec --image /tmp/shot.png` to a text-only model.
CODEX_LEFT_OUT = _user(_text('<image name=[Image #1] path="/tmp/shot.png">'), _text(CODEX_OMITTED), _text("</image>"),
                       _text("what is wrong here?"))
ANSWER = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looks fine."}]}


def test_an_image_in_the_turn_is_refused_where_it_is(encoding: HarmonyEncoding) -> None:
    body = {"input": [_user(_text("hi")), ANSWER, _user(_text("look"), IMAGE)]}
    with pytest.raises(UnsupportedContentError) as caught:
        render_responses(body, encoding, OPTIONS)
    assert caught.value.param == "input[2].content[1]"
    assert "reads text only" in str(caught.value)


def test_codex_leaving_the_image_out_is_refused_by_name(encoding: HarmonyEncoding) -> None:
    with pytest.raises(UnsupportedContentError) as caught:
        render_responses({"input": [_user(_text("<environment_context/>")), CODEX_LEFT_OUT]}, encoding, OPTIONS)
    assert caught.value.param == "input[1].content[1]"
    assert "the image [Image #1] (/tmp/shot.png) was left out by Codex" in str(caught.value)


def test_the_turn_goes_on_after_tool_calls_past_the_user_message(encoding: HarmonyEncoding) -> None:
    # The last *user* message is the turn's input even when tool calls and outputs follow it.
    call = {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c1"}
    output = {"type": "function_call_output", "call_id": "c1", "output": "ok"}
    with pytest.raises(UnsupportedContentError):
        render_responses({"input": [_user(_text("look"), IMAGE), call, output]}, encoding, OPTIONS)


@pytest.mark.parametrize("older", [_user(_text("look"), IMAGE), CODEX_LEFT_OUT])
def test_an_older_image_does_not_end_the_thread(encoding: HarmonyEncoding, older: dict[str, Any]) -> None:
    body = {"input": [older, ANSWER, _user(_text("and now in words?"))]}
    prompt = encoding.decode(render_responses(body, encoding, OPTIONS).tokens)
    assert "and now in words?" in prompt
    assert (IMAGE_PLACEHOLDER in prompt) == (older is not CODEX_LEFT_OUT)
