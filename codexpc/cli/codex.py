"""`codexpc codex-config`: point the Codex CLI at the daemon (`codex -p codexpc`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from codexpc import codex_config
from codexpc.cli.output import add_json_flag, emit_json, say, warn
from codexpc.efforts import EFFORT_NAMES
from codexpc.engine.model_config import GPT_OSS_20B


def register(commands: Any) -> None:
    p = commands.add_parser(
        "codex-config",
        help="write the Codex provider and profile for codexpc",
        description="Add [model_providers.codexpc] to $CODEX_HOME/config.toml (default ~/.codex) and the "
        "profile file $CODEX_HOME/codexpc.config.toml, so that `codex -p codexpc` talks to the daemon. "
        "Your other settings and comments are kept; running it again updates only codexpc's keys.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="codexpc config file to read the port and model from")
    p.add_argument("--port", type=int, help="daemon TCP port (default: from codexpc's config)")
    p.add_argument("--model", help="model name Codex asks for (default: codexpc's default model)")
    p.add_argument("--effort", choices=EFFORT_NAMES, help="model_reasoning_effort for the profile")
    p.add_argument("--codex-home", type=Path, metavar="DIR", help="Codex's folder (default: $CODEX_HOME or ~/.codex)")
    p.add_argument("--remove", action="store_true", help="remove codexpc's provider and profile instead")
    add_json_flag(p)
    p.set_defaults(run=run)


def _target(args: argparse.Namespace) -> codex_config.CodexTarget:
    from codexpc.config import load_config

    config = load_config(args.config, {"port": args.port, "model": args.model})
    if not config.listen.tcp:
        warn("note: codexpc's config turns TCP off; Codex reaches the daemon only over TCP")
    model = config.default_model
    # Codex shows and compacts by the context window; it has no metadata for gpt-oss names.
    window = GPT_OSS_20B.context_length if model.startswith("gpt-oss") else None
    # The catalog describes every name of every served model, so `-m` with any of them works.
    names = tuple(dict.fromkeys(n for entry in config.models for n in entry.names))
    return codex_config.CodexTarget(
        base_url=codex_config.base_url(config.listen.port),
        model=model,
        effort=args.effort,
        context_window=window,
        catalog_names=names or (model,),
    )


def run(args: argparse.Namespace) -> int:
    home = args.codex_home or codex_config.codex_home()
    if args.remove:
        removed = codex_config.remove(home)
        if args.json:
            emit_json({"ok": True, "changed": [str(p) for p in removed]})
        else:
            say("removed codexpc from " + ", ".join(map(str, removed)) if removed else "nothing to remove")
        return 0
    target = _target(args)
    result = codex_config.apply(target, home)
    if args.json:
        emit_json(
            {
                "ok": True,
                "base_url": target.base_url,
                "model": target.model,
                "config_file": str(result.config_file),
                "profile_file": str(result.profile_file),
                "changed": [str(p) for p in result.changed],
                "removed_legacy_profile": result.removed_legacy_profile,
                "warnings": list(result.warnings),
            }
        )
        return 0
    state = "updated" if result.changed else "already up to date"
    say(f"Codex provider `codexpc` -> {target.base_url} (model {target.model}): {state}")
    for path in result.changed:
        say(f"  wrote {path}")
    if result.removed_legacy_profile:
        say(f"  moved the legacy [profiles.codexpc] out of {result.config_file} (Codex 0.134+ refuses it)")
    for line in result.warnings:
        warn(f"warning: {line}")
    say("Try it: codex -p codexpc   (or: codex exec -p codexpc 'say hello')")
    return 0
