"""The daemon's configuration: frozen dataclasses built once from a TOML file, the environment
and the command line, in that order of precedence (a CLI flag beats the environment, which
beats the file, which beats the defaults).

A config file looks like this (every key is optional):

    default_model = "gpt-oss-20b"
    device = "auto"                      # "auto", "cpu", "cuda", "cuda:1" (a Mac's GPU: engine = "mlx")
    default_reasoning_effort = "medium"  # "low" | "medium" | "high"
    log_level = "info"

    [listen]
    hosts = ["127.0.0.1", "::1"]         # loopback only unless allow_non_loopback = true
    port = 8787                          # 0 picks a free port (logged at startup)
    socket = "/run/user/1000/codexpc/codexpc.sock"
    tcp = true
    unix = true
    token_file = "~/.config/codexpc/token"   # mode 0600; required off loopback
    allow_non_loopback = false

    [limits]
    max_body_bytes = 33554432
    max_output_tokens = 32768

    [models."gpt-oss-20b"]
    checkpoint = "~/models/gpt-oss-20b"
    engine = "auto"                      # "auto" (mlx on Apple Silicon, else paged) | "paged" | "mlx" | "scripted" | "vllm" ("torch" is retired: it serves as "paged")
    aliases = ["gpt-oss:20b"]            # gpt-oss-NAME always answers to gpt-oss:NAME too

Bad values raise ConfigError naming the setting (`listen.port`, `models."x".engine`, ...); a
file's problems are reported all at once, an unknown key with the nearest valid one. Client
commands (health, reload, smoke) read only `listen.socket` (client_socket), so a broken file does
not stop them reaching a healthy daemon.

One file per step: schema.py (the dataclasses and their defaults), table.py (typed reads that
name the setting), file.py (the TOML file), overrides.py (the environment and the CLI's flags),
load.py (load_config: the sources in order, then the checks across them).
"""

from codexpc.config.load import client_socket, load_config
from codexpc.config.overrides import OVERRIDE_KEYS
from codexpc.config.schema import (
    DEFAULT_MODEL,
    EFFORTS,
    ENGINE_KINDS,
    LOG_LEVELS,
    LOOPBACK_HOSTS,
    DaemonConfig,
    Effort,
    EngineKind,
    LimitsConfig,
    ListenConfig,
    ModelEntry,
    RemoteEngineConfig,
    SpeculativeSettings,
)

__all__ = [
    "DEFAULT_MODEL",
    "EFFORTS",
    "ENGINE_KINDS",
    "LOG_LEVELS",
    "LOOPBACK_HOSTS",
    "OVERRIDE_KEYS",
    "DaemonConfig",
    "Effort",
    "EngineKind",
    "LimitsConfig",
    "ListenConfig",
    "ModelEntry",
    "RemoteEngineConfig",
    "SpeculativeSettings",
    "client_socket",
    "load_config",
]
