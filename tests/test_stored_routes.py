"""GET /v1/responses/{id}, GET /v1/responses/{id}/input_items and DELETE /v1/responses/{id} over
the app (httpx over ASGI) with a real store: what they answer validates against the published
schemas; an unknown id is OpenAI's 404; bad query values are 400s naming the parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import published_spec
import pytest
from openai_harmony import HarmonyEncoding

from codexpc.engine.scripted import ScriptedEngine
from codexpc.server.app import create_app
from codexpc.server.runtime import Runtime
from codexpc.store import ResponseStore, StoreConfig


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    opened = ResponseStore.open(StoreConfig(folder=tmp_path))
    yield opened
    opened.close()


@pytest.fixture()
async def http(encoding: HarmonyEncoding, store: ResponseStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Runtime(ScriptedEngine(encoding), encoding), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client


async def _a_real_response(http: httpx.AsyncClient, store: ResponseStore) -> dict[str, Any]:
    """A response the daemon made, stored as the daemon will store it once wired."""
    reply = await http.post("/v1/responses", json={"input": "What is 2+2?"})
    response: dict[str, Any] = reply.json()
    store.put(response, [{"role": "user", "content": "What is 2+2?"}, {"role": "user", "content": "Quickly."}])
    return response


def _assert_not_found(reply: httpx.Response, rid: str) -> None:
    assert reply.status_code == 404
    assert reply.json() == {"error": {"message": f"Response with id '{rid}' not found.",
                                      "type": "invalid_request_error", "param": None, "code": None}}


async def test_get_answers_the_stored_response(http: httpx.AsyncClient, store: ResponseStore) -> None:
    response = await _a_real_response(http, store)
    reply = await http.get(f"/v1/responses/{response['id']}")
    assert reply.status_code == 200 and reply.json() == response
    if published_spec.SPEC_PATH.is_file():
        published_spec.validate("Response", reply.json())


async def test_input_items_are_listed_as_published(http: httpx.AsyncClient, store: ResponseStore) -> None:
    response = await _a_real_response(http, store)
    reply = await http.get(f"/v1/responses/{response['id']}/input_items", params={"order": "asc", "limit": 1})
    assert reply.status_code == 200, reply.text
    listed = reply.json()
    assert listed["has_more"] is True and listed["data"][0]["content"][0]["text"] == "What is 2+2?"
    after = await http.get(f"/v1/responses/{response['id']}/input_items",
                           params={"order": "asc", "after": listed["last_id"]})
    assert [i["content"][0]["text"] for i in after.json()["data"]] == ["Quickly."]
    if published_spec.SPEC_PATH.is_file():
        published_spec.validate("ResponseItemList", listed)
    for params, param in (({"limit": "x"}, "limit"), ({"limit": 500}, "limit"), ({"order": "up"}, "order"),
                          ({"after": "msg_nope"}, "after")):
        bad = await http.get(f"/v1/responses/{response['id']}/input_items", params=params)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param


async def test_delete_then_everything_is_a_404(http: httpx.AsyncClient, store: ResponseStore) -> None:
    rid = (await _a_real_response(http, store))["id"]
    reply = await http.delete(f"/v1/responses/{rid}")
    assert reply.status_code == 200 and reply.json() == {"id": rid, "object": "response", "deleted": True}
    _assert_not_found(await http.get(f"/v1/responses/{rid}"), rid)
    _assert_not_found(await http.get(f"/v1/responses/{rid}/input_items"), rid)
    _assert_not_found(await http.delete(f"/v1/responses/{rid}"), rid)


async def test_unknown_ids_and_a_store_that_is_off_are_404s(encoding: HarmonyEncoding,
                                                            http: httpx.AsyncClient) -> None:
    _assert_not_found(await http.get("/v1/responses/resp_unknown"), "resp_unknown")
    app = create_app(Runtime(ScriptedEngine(encoding), encoding))  # no store: everything is a 404
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as off:
        _assert_not_found(await off.get("/v1/responses/resp_1"), "resp_1")
        _assert_not_found(await off.delete("/v1/responses/resp_1"), "resp_1")


async def test_streaming_a_stored_response_is_refused_by_name(http: httpx.AsyncClient, store: ResponseStore) -> None:
    rid = (await _a_real_response(http, store))["id"]
    reply = await http.get(f"/v1/responses/{rid}", params={"stream": "true"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "stream"
