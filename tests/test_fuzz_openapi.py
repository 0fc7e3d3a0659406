"""A fuzz run of the HTTP API from its own OpenAPI description (GET /openapi.json), with
schemathesis: bodies that follow the schemas and bodies that break them, on every route, through
the same security middleware the daemon puts in front of the app. Every answer must be a
non-5xx with a status, content type and body that the description lists.

CI runs a short form (FUZZ_EXAMPLES per route). The long form:
    CODEXPC_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_openapi.py -s
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from codexpc.engine.scripted import ScriptedEngine
from codexpc.harmony.encoding import load_encoding
from codexpc.server.app import create_app
from codexpc.server.request import RequestLimits
from codexpc.server.runtime import Runtime
from codexpc.server.security import Policy, SecurityMiddleware

FUZZ_EXAMPLES = int(os.environ.get("CODEXPC_FUZZ_EXAMPLES", "60"))
LONG_FORM = "CODEXPC_FUZZ_EXAMPLES" in os.environ  # the long form draws new cases each run
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]

_encoding = load_encoding()
# A short context window and output cap: generated prompts stay cheap, and the bounds get hit.
_runtime = Runtime(ScriptedEngine(_encoding, context_length=2048), _encoding,
                   limits=RequestLimits(max_output_tokens=64, default_max_output_tokens=16, max_input_items=64,
                                        max_tools=16, max_tool_schema_bytes=4096))
APP = SecurityMiddleware(create_app(_runtime), Policy("unix", frozenset(), None, 256 * 1024))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
TRIED: Counter[str] = Counter()


@schema.parametrize()
# The short form replays the same cases every run (no example database, fixed seed).
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not LONG_FORM, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_description(case: schemathesis.Case) -> None:
    TRIED[f"{case.method} {case.path}"] += 1
    case.call_and_validate(checks=CHECKS)


def test_the_fuzz_ran_and_left_nothing_running() -> None:
    if not TRIED:
        pytest.skip("run together with the fuzz test")
    total = sum(TRIED.values())
    print(f"fuzz cases tried: {total} {dict(TRIED)}")
    assert _runtime.in_flight == 0 and _runtime.metrics.in_flight == 0
