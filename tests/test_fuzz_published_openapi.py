"""A fuzz run of the daemon from OpenAI's published description (../shared/specs/openai-openapi.json),
beside test_fuzz_openapi.py's run from codexpc's own: schemathesis draws bodies from CreateResponse
and CreateChatCompletionRequest (and ids for the stored-response routes) for only the operations
codexpc serves, through the daemon's security middleware with a real response store. Every answer
must be a non-5xx, and every answer the document describes (a 200's Response, its stream events,
a list of input items) must validate against it. Bounded: FUZZ_EXAMPLES cases per operation,
about a minute on 2 cores. Skips where the document is absent.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import published_spec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from codexpc.engine.scripted import ScriptedEngine
from codexpc.harmony.encoding import load_encoding
from codexpc.server.app import create_app
from codexpc.server.runtime import RequestLimits, Runtime
from codexpc.server.security import Policy, SecurityMiddleware
from codexpc.store import ResponseStore, StoreConfig

if not published_spec.SPEC_PATH.is_file():
    pytest.skip(f"OpenAI's published description is absent ({published_spec.SPEC_PATH})", allow_module_level=True)

FUZZ_EXAMPLES = int(os.environ.get("CODEXPC_FUZZ_PUBLISHED_EXAMPLES", "30"))
LONG_FORM = "CODEXPC_FUZZ_PUBLISHED_EXAMPLES" in os.environ
# The operations codexpc serves, by the document's paths (its server URL is .../v1).
SERVED = {"/responses": ("post",), "/responses/{response_id}": ("get", "delete"),
          "/responses/{response_id}/input_items": ("get",), "/chat/completions": ("post",)}
CHECKS = [not_a_server_error, response_schema_conformance]


def _served_document() -> dict[str, object]:
    spec = copy.copy(published_spec.spec_or_skip())
    paths = spec["paths"]
    spec["paths"] = {path: {m: op for m, op in paths[path].items() if m in methods or m == "parameters"}
                     for path, methods in SERVED.items()}
    spec["servers"] = [{"url": "/v1"}]
    # The document gives DELETE's 404 the bare Error object; OpenAI's service (and every SDK that
    # parses it) wraps it as {"error": Error}, the published ErrorResponse. Check against that.
    delete = copy.deepcopy(spec["paths"]["/responses/{response_id}"]["delete"])
    delete["responses"]["404"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/ErrorResponse"}
    spec["paths"]["/responses/{response_id}"]["delete"] = delete
    spec.pop("security", None)  # the Unix-socket policy below needs no token
    return spec


_encoding = load_encoding()
_runtime = Runtime(ScriptedEngine(_encoding, context_length=2048), _encoding,
                   limits=RequestLimits(max_output_tokens=64, default_max_output_tokens=16, max_input_items=64,
                                        max_tools=16, max_tool_schema_bytes=4096))
_store = ResponseStore.open(StoreConfig(folder=Path(tempfile.mkdtemp(prefix="codexpc-fuzz-store-"))))
_app = create_app(_runtime, store=_store)


APP = SecurityMiddleware(_app, Policy("unix", frozenset(), None, 256 * 1024))
schema = schemathesis.openapi.from_dict(_served_document())
schema.app = APP
# Fuzzing only: the coverage phase would enumerate CreateResponse's thousands of variants.
schema.config.phases.update(phases=["examples", "fuzzing"])
TRIED: Counter[str] = Counter()
STARTED = time.monotonic()


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not LONG_FORM, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_daemon_conforms_to_openais_published_description(case: schemathesis.Case) -> None:
    TRIED[f"{case.method} {case.path}"] += 1
    case.call_and_validate(checks=CHECKS)


def test_the_published_fuzz_ran_within_its_budget() -> None:
    if not TRIED:
        pytest.skip("run together with the fuzz test")
    print(f"published fuzz cases: {sum(TRIED.values())} {dict(TRIED)} in {time.monotonic() - STARTED:.1f} s")
    assert set(TRIED) >= {"POST /responses", "POST /chat/completions", "GET /responses/{response_id}"}
    assert _runtime.in_flight == 0 and _runtime.metrics.in_flight == 0
