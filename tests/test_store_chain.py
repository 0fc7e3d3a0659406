"""previous_response_id: the stored chain placed before the new input renders to the same tokens
as the whole conversation sent in full (the real renderer), and a broken chain is a clear 400."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai_harmony import HarmonyEncoding

from codexpc.errors import RequestError
from codexpc.harmony.render import RenderOptions, render_responses
from codexpc.store import ResponseStore, StoreConfig, resolve_previous

OPTIONS = RenderOptions(current_date="2026-01-01")


def answer(rid: str, previous: str | None, text: str, call: bool = False) -> dict[str, Any]:
    output: list[dict[str, Any]] = [{"type": "reasoning", "id": f"rs_{rid}", "summary": [], "status": "completed",
                                     "content": [{"type": "reasoning_text", "text": f"thinking about {rid}"}]}]
    if call:
        output.append({"type": "function_call", "id": f"fc_{rid}", "call_id": f"call_{rid}", "name": "exec_command",
                       "arguments": '{"cmd": "ls"}', "status": "completed"})
    else:
        output.append({"type": "message", "id": f"msg_{rid}", "role": "assistant", "status": "completed",
                       "phase": "final_answer",
                       "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    return {"id": rid, "object": "response", "created_at": 1, "status": "completed",
            "previous_response_id": previous, "output": output}


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    opened = ResponseStore.open(StoreConfig(folder=tmp_path))
    yield opened
    opened.close()


TOOLS = [{"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {
    "cmd": {"type": "string"}}, "required": ["cmd"]}}]


def test_a_continued_turn_renders_as_the_whole_conversation_sent_in_full(store: ResponseStore,
                                                                          encoding: HarmonyEncoding) -> None:
    common = {"instructions": "Be brief.", "tools": TOOLS}
    full: list[Any] = []
    turns = [("resp_1", "Hello", False), ("resp_2", "list files", True), ("resp_3", None, False)]
    previous = None
    for rid, user_text, call in turns:
        new_input: list[Any] = ([{"role": "user", "content": user_text}] if user_text else
                                [{"type": "function_call_output", "call_id": "call_resp_2", "output": "a.txt"}])
        stored = answer(rid, previous, f"answer {rid}", call)
        store.put(stored, new_input)
        full += new_input + stored["output"]
        previous = rid
    next_input = [{"role": "user", "content": "and now?"}]
    resolved = resolve_previous(store, {**common, "previous_response_id": "resp_3", "input": next_input})
    in_full = {**common, "input": full + next_input}
    assert resolved["previous_response_id"] == "resp_3"
    assert render_responses(resolved, encoding, OPTIONS).tokens == render_responses(in_full, encoding, OPTIONS).tokens
    # A string input continues the same way.
    text = resolve_previous(store, {**common, "previous_response_id": "resp_3", "input": "and now?"})
    assert render_responses(text, encoding, OPTIONS).tokens == render_responses(in_full, encoding, OPTIONS).tokens


def test_a_body_without_previous_response_id_is_unchanged(store: ResponseStore) -> None:
    body = {"input": "hi", "store": False}
    assert resolve_previous(store, body) == body and resolve_previous(None, body) == body


def test_an_unknown_or_broken_chain_is_a_400_naming_previous_response_id(store: ResponseStore) -> None:
    with pytest.raises(RequestError) as caught:
        resolve_previous(store, {"input": "hi", "previous_response_id": "resp_nope"})
    assert caught.value.param == "previous_response_id" and caught.value.code == "previous_response_not_found"
    assert "resp_nope" in str(caught.value)
    store.put(answer("resp_1", None, "a"), "hi")
    store.put(answer("resp_2", "resp_1", "b"), "again")
    store.delete("resp_1")  # an earlier link gone (deleted or evicted)
    with pytest.raises(RequestError, match="earlier in the conversation") as caught:
        resolve_previous(store, {"input": "hi", "previous_response_id": "resp_2"})
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(RequestError) as caught:
        resolve_previous(None, {"input": "hi", "previous_response_id": "resp_2"})
    assert caught.value.code == "unsupported_parameter"
    with pytest.raises(RequestError):
        resolve_previous(store, {"input": "hi", "previous_response_id": 5})
