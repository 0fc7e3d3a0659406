"""The daemon's settings as frozen dataclasses, each field with its default.

Built once by load_config (codexpc.config) and passed down; nothing changes them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codexpc import settings
from codexpc.efforts import EFFORT_NAMES
from codexpc.errors import ConfigError

EngineKind = Literal["auto", "torch", "paged", "mlx", "scripted", "vllm"]
Effort = str  # a name from codexpc.efforts.EFFORTS ("xhigh" means gpt-oss's "high")
ENGINE_KINDS: tuple[str, ...] = ("auto", "torch", "paged", "mlx", "scripted", "vllm")
EFFORTS: tuple[str, ...] = EFFORT_NAMES
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
DEFAULT_MODEL = "gpt-oss-20b"
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class RemoteEngineConfig:
    """Engine "vllm": the vLLM servers that codexpc forwards Harmony prompt tokens to."""

    backends: tuple[str, ...] = ()  # base URLs, e.g. "http://10.0.0.5:8000"; one conversation sticks to one
    served_model: str | None = None  # vLLM's --served-model-name; None: the first one /v1/models lists
    context_length: int | None = None  # None: the smallest max_model_len the back ends report
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0  # the longest wait for the next chunk, a long prompt's prefill included
    retry_initial_s: float = 1.0  # a failed back end is out for this long, doubling up to retry_max_s
    retry_max_s: float = 60.0
    api_key_file: Path | None = None  # vLLM's --api-key, sent as a bearer token


@dataclass(frozen=True)
class SpeculativeSettings:
    """`[models."x".speculative]`: drafting from the conversation (docs/speculative-decoding.md).
    Off by default until its speedup is measured on a GPU (bench/speculative.py)."""

    enabled: bool = False
    k: int = 4  # most tokens drafted a step
    min_match: int = 3  # shortest recurring suffix that drafts


@dataclass(frozen=True)
class ModelEntry:
    """One servable model: the name clients send, where its weights are, which engine runs it."""

    name: str
    engine: EngineKind = "auto"  # mlx on Apple Silicon, else paged (continuous batching, prefix reuse)
    checkpoint: Path | None = None  # a folder or file; the scripted engine needs none
    aliases: tuple[str, ...] = ()
    remote: RemoteEngineConfig | None = None  # engine "vllm" only
    # Grammar-constrained decoding (codexpc/constrain/): the model's output cannot break Harmony
    # and tool arguments follow their schemas. On by default; `false` leaves only validation.
    constrained_decoding: bool = True
    speculative: SpeculativeSettings = field(default_factory=SpeculativeSettings)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a request may use for this model, canonical name first."""
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class ListenConfig:
    hosts: tuple[str, ...] = LOOPBACK_HOSTS
    port: int = settings.DEFAULT_PORT  # 0: the OS picks one
    socket_path: Path = field(default_factory=settings.socket_path)
    tcp: bool = True
    unix: bool = True
    token_file: Path | None = None
    allow_non_loopback: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on what one request may ask for; a request beyond them gets a 4xx naming the field."""

    max_body_bytes: int = 32 * 1024 * 1024  # Codex re-sends the whole conversation each turn
    max_output_tokens: int = 32768  # the cap on a request's max_output_tokens
    default_max_output_tokens: int = 8192  # used when a request does not say
    max_input_items: int = 4096
    max_tools: int = 256
    max_tool_schema_bytes: int = 256 * 1024  # one tool's JSON schema, serialized
    queue_size: int = 64  # requests waiting (FIFO) beyond max_in_flight; then 503 server_is_overloaded
    max_in_flight: int = 128  # requests running at once; the next ones wait in the queue
    # While the model loads, a model request waits this long for it before its 503: Codex 0.140
    # and 0.155 give up after ~25 s of 503s, and gpt-oss-20b takes up to a minute to load.
    hold_while_loading_s: float = 120.0
    shutdown_timeout_s: float = 10.0  # SIGTERM: streams still running after this are ended


@dataclass(frozen=True)
class DaemonConfig:
    models: tuple[ModelEntry, ...] = (ModelEntry(DEFAULT_MODEL, aliases=("gpt-oss:20b",)),)
    default_model: str = DEFAULT_MODEL
    device: str = "auto"
    default_reasoning_effort: Effort = "medium"
    log_level: str = "info"
    listen: ListenConfig = field(default_factory=ListenConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    vocab: Path | None = None  # o200k_base.tiktoken or its folder (see codexpc.vocab)
    capture_dir: Path | None = None  # debugging: each POST body is written here as JSON
    config_path: Path | None = None  # the file this came from, for reload and messages
    config_given: bool = False  # the file was named (--config), not found at the default place
    # The CLI overrides this was built with, so that a reload (SIGHUP) re-reads the file and
    # applies them again: load_config(config.config_path, dict(config.overrides)).
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def reload_path(self) -> Path | None:
        """The file a reload reads: the one named at startup, else the default place again (a
        default file deleted since is no error: the daemon reloads as a fresh start would)."""
        return self.config_path if self.config_given else None

    def find_model(self, name: str) -> ModelEntry | None:
        """The model a request names (canonical name or alias), or None."""
        for entry in self.models:
            if name in entry.names:
                return entry
        return None

    @property
    def model(self) -> ModelEntry:
        """The default model; it exists (load_config checks)."""
        entry = self.find_model(self.default_model)
        assert entry is not None, "load_config guarantees the default model exists"
        return entry

    def require_servable(self) -> ModelEntry:
        """The default model, checked for what serving it needs (a checkpoint for real engines)."""
        entry = self.model
        if entry.engine == "vllm":
            if entry.remote is None or not entry.remote.backends:
                raise ConfigError(f'models."{entry.name}".backends is not set: list the vLLM servers to forward to')
            return entry
        if entry.engine != "scripted" and entry.checkpoint is None:
            raise ConfigError(
                f'models."{entry.name}".checkpoint is not set: pass --checkpoint PATH or set it in '
                f"{self.config_path or settings.config_file()}"
            )
        return entry
