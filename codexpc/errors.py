"""The exception tree. Each class maps to one HTTP status and one CLI exit code."""

from __future__ import annotations


class CodexpcError(Exception):
    """Base of every error codexpc raises on purpose."""

    http_status = 500
    exit_code = 1
    code = "server_error"  # OpenAI error body `code`


class ConfigError(CodexpcError):
    """A bad setting from the user (CLI flag, config file, environment)."""

    # Over HTTP only /admin/reload meets one: the daemon is fine, the file it re-reads is not.
    http_status = 409
    exit_code = 2
    code = "invalid_config"


class ListenError(ConfigError):
    """A socket cannot be made: a live daemon, a port in use, a folder that is not ours."""


class AlreadyRunning(ListenError):
    """Another daemon answers on the socket."""


class VocabularyError(CodexpcError):
    """No offline source of the o200k vocabulary worked."""

    exit_code = 3
    code = "vocabulary_unavailable"


class CheckpointError(CodexpcError):
    """A checkpoint is missing, broken or inconsistent. The message names the file."""

    exit_code = 4
    code = "checkpoint_invalid"


class RequestError(CodexpcError):
    """A client's request is malformed or out of bounds (a 4xx)."""

    http_status = 400
    code = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code


class UnsupportedContentError(RequestError):
    """A request asks for something a local text model cannot do (images, files)."""

    code = "unsupported_content"


class ContextLengthError(RequestError):
    """The prompt does not fit in the model's context window."""

    code = "context_length_exceeded"


class ModelNotFoundError(RequestError):
    """The request names a model this daemon does not serve."""

    http_status = 404
    code = "model_not_found"


class ForbiddenError(RequestError):
    """An admin route was reached over a transport other than the Unix socket."""

    http_status = 403
    code = "forbidden"


class OverloadedError(CodexpcError):
    """The admission queue is full; the client should retry later."""

    http_status = 429
    code = "rate_limit_exceeded"
    retry_after_s = 1  # the Retry-After header: a running stream frees its slot within seconds


class UnavailableError(CodexpcError):
    """No engine takes requests right now (shutting down); the client should retry later."""

    http_status = 503
    code = "service_unavailable"
    retry_after_s = 2  # a restarted daemon (systemd) is usually back within seconds


class EngineError(CodexpcError):
    """The engine failed while generating (for example out of GPU memory)."""

    http_status = 500
    code = "engine_error"


class DaemonNotRunning(CodexpcError):
    """The CLI found no daemon to talk to."""

    exit_code = 5
    code = "daemon_not_running"
