"""previous_response_id: the stored conversation placed before a request's new input.

A continued response's conversation is, recursively, its previous response's conversation,
that response's input items, then its output items (reasoning, messages, tool calls), as OpenAI
describes it. The body that comes back asks for the same thing the client would have sent in
full, so the renderer gives the same tokens and the engine's prefix cache finds the earlier
turns' KV: a continued turn costs its new tokens. Instructions are not carried over (the API's
rule: each request's own `instructions` apply).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from codexpc.errors import RequestError
from codexpc.store.items import as_items

MAX_CHAIN = 10_000  # responses followed back from one request; a longer chain is refused


class StoredResponses(Protocol):
    def get(self, response_id: str) -> dict[str, Any] | None: ...

    def all_input_items(self, response_id: str) -> list[dict[str, Any]]: ...


def resolve_previous(store: StoredResponses | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with the conversation before previous_response_id prepended to its input (and the
    id kept, for the Response to echo); a body without one comes back as it was."""
    previous = body.get("previous_response_id")
    if previous is None:
        return dict(body)
    if not isinstance(previous, str) or not previous:
        raise RequestError("previous_response_id must be a non-empty string", param="previous_response_id")
    if store is None:
        raise RequestError("previous_response_id needs stored responses, and this daemon's store is off; send "
                           "the whole conversation in input", param="previous_response_id",
                           code="unsupported_parameter")
    chain = _chain(store, previous)
    history: list[Any] = []
    for stored in reversed(chain):  # oldest first
        history += store.all_input_items(stored["id"])
        history += [item for item in stored.get("output") or [] if isinstance(item, Mapping)]
    return {**body, "input": history + as_items(body.get("input"))}


def _chain(store: StoredResponses, newest: str) -> list[dict[str, Any]]:
    """The stored responses from `newest` back to the first of its conversation, newest first."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: str | None = newest
    while current is not None:
        if current in seen or len(chain) >= MAX_CHAIN:
            raise RequestError(f"the conversation behind previous_response_id is longer than {MAX_CHAIN} "
                               "responses or loops", param="previous_response_id")
        seen.add(current)
        stored = store.get(current)
        if stored is None:
            # OpenAI's answer for an unknown, deleted or expired previous response.
            which = "Previous response" if current == newest else "A response earlier in the conversation"
            raise RequestError(f"{which} with id '{current}' not found.", param="previous_response_id",
                               code="previous_response_not_found")
        chain.append(stored)
        link = stored.get("previous_response_id")
        current = link if isinstance(link, str) and link else None
    return chain
