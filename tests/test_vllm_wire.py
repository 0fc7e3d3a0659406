"""The vllm engine's pure parts: vLLM's chunk formats, routing, backoff, and its config entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexpc.config import load_config
from codexpc.engine.api import SamplingParams
from codexpc.engine.vllm.backend import Backend, Backoff
from codexpc.engine.vllm.router import candidates, preference
from codexpc.engine.vllm.wire import (
    StreamError,
    WireError,
    error_message,
    is_missing_route,
    parse_chunk,
    request_body,
)
from codexpc.errors import ConfigError

PARAMS = SamplingParams(temperature=0.0, max_new_tokens=5, stop_token_ids=frozenset({200012, 200002}), seed=3)


def test_generate_body_is_tokens_in_tokens_out() -> None:
    body = request_body("generate", [1, 2, 3], PARAMS, "req-1", "openai/gpt-oss-120b")
    assert body["token_ids"] == [1, 2, 3] and body["request_id"] == "req-1" and body["stream"] is True
    assert body["sampling_params"] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 5, "seed": 3,
                                       "stop_token_ids": [200002, 200012], "skip_special_tokens": False,
                                       "detokenize": False}
    assert "model" not in request_body("generate", [1], PARAMS, "r", None)


def test_completions_body_asks_for_token_ids_both_ways() -> None:
    body = request_body("completions", [4, 5], PARAMS, "r", None)
    assert body["prompt"] == [4, 5] and body["return_token_ids"] is True
    assert body["logprobs"] == 0 and body["return_tokens_as_token_ids"] is True and body["max_tokens"] == 5


def test_generate_chunks() -> None:
    assert parse_chunk("generate", '{"request_id": "x", "choices": [{"index": 0, "token_ids": [7, 8]}]}').token_ids == [7, 8]
    last = parse_chunk("generate", '{"choices": [{"index": 0, "token_ids": [200002], "finish_reason": "stop"}]}')
    assert last.token_ids == [200002] and last.finish_reason == "stop"
    usage = parse_chunk("generate", '{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, '
                                    '"prompt_tokens_details": {"cached_tokens": 8}}}')
    assert usage.token_ids == [] and usage.cached_tokens == 8


def test_completions_chunks_read_token_ids_or_logprobs() -> None:
    assert parse_chunk("completions", '{"choices": [{"index": 0, "text": "a", "token_ids": [3]}]}').token_ids == [3]
    old = '{"choices": [{"index": 0, "text": "ab", "logprobs": {"tokens": ["token_id:10", "token_id:11"]}}]}'
    assert parse_chunk("completions", old).token_ids == [10, 11]
    with pytest.raises(WireError, match="no token ids"):
        parse_chunk("completions", '{"choices": [{"index": 0, "text": "ab"}]}')
    with pytest.raises(WireError, match="token_id:N"):
        parse_chunk("completions", '{"choices": [{"index": 0, "text": "a", "logprobs": {"tokens": ["a"]}}]}')


@pytest.mark.parametrize("payload", ['{"error": {"message": "boom", "code": 500}}',
                                     '{"object": "error", "message": "boom", "code": 500}'])
def test_in_stream_errors_both_shapes(payload: str) -> None:
    with pytest.raises(StreamError, match="boom") as caught:
        parse_chunk("generate", payload)
    assert caught.value.code == 500


@pytest.mark.parametrize("payload", ["[1, 2]", "nope", '{"choices": [{"token_ids": [1]}]}', '{"choices": 3}'])
def test_garbage_chunks(payload: str) -> None:
    with pytest.raises(WireError):
        parse_chunk("generate", payload)


def test_missing_route_is_fastapis_404_not_vllms() -> None:
    assert is_missing_route(404, b'{"detail":"Not Found"}')
    assert not is_missing_route(404, b'{"error": {"message": "The model `x` does not exist.", "code": 404}}')
    assert error_message(b'{"error": {"message": "too long", "code": 400}}') == "too long"
    assert error_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"


def test_rendezvous_moves_only_the_keys_of_a_backend_that_is_out() -> None:
    backends = [Backend(f"http://10.0.0.{i}:8000") for i in range(4)]
    keys = [f"conversation-{i}" for i in range(200)]
    home = {k: preference(backends, k)[0].url for k in keys}
    assert len(set(home.values())) == 4
    backends[1].failed("down", Backoff(), now=0.0)
    moved = {k: candidates(backends, k, now=0.5)[0].url for k in keys}
    assert all(moved[k] == home[k] for k in keys if home[k] != backends[1].url)
    assert backends[1].url not in moved.values()
    assert {k: candidates(backends, k, now=5.0)[0].url for k in keys} == home  # back after the backoff


def test_without_a_key_the_least_busy_backend_goes_first() -> None:
    a, b = Backend("http://a"), Backend("http://b")
    a.in_flight = 3
    assert preference([a, b], None) == [b, a]


def test_backoff_doubles_up_to_the_cap_and_success_resets_it() -> None:
    backoff = Backoff(initial_s=1.0, max_s=5.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    backend = Backend("http://a")
    assert backend.failed("x", backoff, now=0.0) == 1.0 and backend.failed("x", backoff, now=0.0) == 2.0
    backend.succeeded()
    assert backend.consecutive_failures == 0 and backend.failed("x", backoff, now=0.0) == 1.0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_config_entry_for_vllm(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[models."gpt-oss-120b"]\nengine = "vllm"\n'
                                         'backends = ["http://10.0.0.5:8000/", "http://10.0.0.6:8000"]\n'
                                         "read_timeout_s = 30\ncontext_length = 65536\n"))
    entry = config.require_servable()
    assert entry.engine == "vllm" and entry.checkpoint is None and entry.remote is not None
    assert entry.remote.backends == ("http://10.0.0.5:8000", "http://10.0.0.6:8000")
    assert entry.remote.read_timeout_s == 30.0 and entry.remote.context_length == 65536


@pytest.mark.parametrize(("text", "message"), [
    ('engine = "vllm"\n', "backends is not set"),
    ('engine = "vllm"\nbackends = ["10.0.0.5:8000"]\n', "not an http"),
    ('engine = "paged"\nbackends = ["http://a"]\n', 'applies only to engine = "vllm"'),
    ('engine = "vllm"\nbackends = ["http://a"]\nread_timeout_s = -1\n', "read_timeout_s must be positive"),
])
def test_bad_vllm_entries_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, f'[models."gpt-oss-120b"]\n{text}')).require_servable()
