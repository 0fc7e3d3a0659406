"""Stored responses: the Responses API's `store: true`, kept in SQLite under the state folder.

config.py     where the database lives and how much it keeps (frozen, built at the edge)
database.py   opening it: a private folder and file, WAL, the schema migrated
schema.py     the versioned schema: one migration per version, recorded in a table
items.py      a request's input as the API lists it (items with ids and typed content parts)
responses.py  ResponseStore: put, get, input_items, delete, evict
chain.py      previous_response_id: the stored conversation placed before the new input
"""

from codexpc.store.chain import resolve_previous
from codexpc.store.config import StoreConfig
from codexpc.store.responses import ResponseStore

__all__ = ["ResponseStore", "StoreConfig", "resolve_previous"]
