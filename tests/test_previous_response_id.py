"""Done-when of issue 15: five turns continued by previous_response_id (the openai client, a real
uvicorn server, the paged engine on the CPU with the tiny checkpoint, greedy) give the same text
as the same five turns sent in full, and the later turns report cached prompt tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from live_server import serve_in_thread
from openai_harmony import HarmonyEncoding

from codexpc.engine.factory import create_engine
from codexpc.server.app import create_app
from codexpc.server.runtime import Runtime
from codexpc.store import ResponseStore, StoreConfig

QUESTIONS = ["Hello.", "What is 2+2?", "And 3+3?", "Name a colour.", "Thanks, bye."]
SAMPLING: dict[str, Any] = {"temperature": 0, "max_output_tokens": 8}



@pytest.fixture()
def client(tiny_checkpoint: Path, encoding: HarmonyEncoding, tmp_path: Path) -> Iterator[openai.OpenAI]:
    engine = create_engine("paged", model="gpt-oss-20b", checkpoint=tiny_checkpoint, device="cpu")
    store = ResponseStore.open(StoreConfig(folder=tmp_path / "store"))
    app = create_app(Runtime(engine, encoding), store=store)
    with serve_in_thread(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    store.close()


def test_five_turns_by_previous_response_id_match_five_turns_sent_in_full(client: openai.OpenAI) -> None:
    chained_text, cached = [], []
    previous: str | None = None
    for question in QUESTIONS:
        extra = {"previous_response_id": previous} if previous else {}
        response = client.responses.create(model="gpt-oss-20b", input=question, store=True, **extra, **SAMPLING)
        chained_text.append(response.output_text)
        assert response.usage is not None and response.previous_response_id == previous
        cached.append(response.usage.input_tokens_details.cached_tokens)
        previous = response.id
    assert client.responses.retrieve(previous).id == previous

    full_text: list[str] = []
    history: list[Any] = []
    for question in QUESTIONS:
        history.append({"role": "user", "content": question})
        response = client.responses.create(model="gpt-oss-20b", input=history, store=False, **SAMPLING)
        full_text.append(response.output_text)
        history += [item.model_dump(exclude_none=True) for item in response.output]
    assert chained_text == full_text
    assert all(n > 0 for n in cached[1:]), cached  # each later turn found the earlier turns' KV
