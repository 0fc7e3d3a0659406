"""Point the Codex CLI at codexpc: a provider in config.toml and a profile file beside it.

Codex (0.134 and later, checked with 0.169.0) reads profiles from their own files,
`$CODEX_HOME/<name>.config.toml`, and refuses to start with `--profile NAME` while config.toml
still holds a legacy `[profiles.NAME]` table or `profile = "NAME"` selector. So:

- `$CODEX_HOME/config.toml` gets `[model_providers.codexpc]` (so `-c model_provider=codexpc`
  works too), and loses a legacy `[profiles.codexpc]` table if an older setup left one;
- `$CODEX_HOME/codexpc.config.toml` selects the model and that provider, so `codex -p codexpc`
  works, and points `model_catalog_json` at `$CODEX_HOME/codexpc-models.json`, the catalog that
  makes gpt-oss a model Codex knows (codexpc/codex_catalog.py: window, apply_patch, reasoning
  levels, summaries, text-only input). It is in the profile, not config.toml, so that Codex's
  own catalog stays in force for its other models.

Edits go through tomlkit so the user's other settings, their order and their comments survive.
Files are replaced atomically, and a file whose content would not change is not rewritten.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from codexpc import settings
from codexpc.codex_catalog import CatalogModel, catalog
from codexpc.errors import ConfigError

log = logging.getLogger(__name__)

ENV_CODEX_HOME = "CODEX_HOME"
PROVIDER = "codexpc"
PROFILE = "codexpc"
CATALOG_FILE = "codexpc-models.json"
# The reasoning as Codex shows it: codexpc streams it as a summary when one is asked for
# (docs/codex-reasoning.md says where each Codex version draws it).
REASONING_SUMMARY = "detailed"
PROFILE_HEADER = (
    "Codex profile for codexpc (`codex -p codexpc`), written by `codexpc codex-config`.",
    "Edit freely: codexpc only updates the keys it wrote.",
    "gpt-oss's reasoning streams as a summary: Codex shows it in the status row while the model",
    "thinks and in the transcript (Ctrl+T). For the raw text instead: model_reasoning_summary = \"none\"",
    "and show_raw_agent_reasoning = true.",
)
# Codex gives up on a stream idle this long; a first prompt of 10k+ tokens on a cold GPU can
# take a while before its first token.
STREAM_IDLE_TIMEOUT_MS = 600_000


@dataclass(frozen=True)
class CodexTarget:
    """What Codex should talk to."""

    base_url: str  # "http://127.0.0.1:8787/v1"
    model: str = "gpt-oss-20b"
    effort: str | None = None  # model_reasoning_effort; None leaves Codex's default
    context_window: int | None = None  # model_context_window, shown by Codex
    catalog_names: tuple[str, ...] = ()  # names to describe in the model catalog; () writes none


@dataclass(frozen=True)
class CodexConfigResult:
    config_file: Path
    profile_file: Path
    changed: tuple[Path, ...]  # files actually rewritten
    removed_legacy_profile: bool
    warnings: tuple[str, ...]


def codex_home() -> Path:
    explicit = settings.env(ENV_CODEX_HOME)
    return Path(explicit).expanduser() if explicit else Path.home() / ".codex"


def base_url(port: int, host: str = "127.0.0.1") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


def profile_path(home: Path, profile: str = PROFILE) -> Path:
    return home / f"{profile}.config.toml"


def _load(path: Path) -> TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (tomlkit.exceptions.ParseError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it, then run codex-config again") from None


def _table(doc: TOMLDocument | Table, key: str, *, where: Path, super_table: bool = False) -> Table:
    existing = doc.get(key)
    if existing is None:
        created = tomlkit.table(is_super_table=super_table)
        doc[key] = created
        return created
    if not isinstance(existing, Table):
        raise ConfigError(f"{where}: `{key}` is not a table; codexpc will not overwrite it")
    return existing


def _set(table: Table | TOMLDocument, values: dict[str, Any]) -> None:
    # Only our keys change: a user's own extra keys (http_headers, ...) in our table stay.
    for key, value in values.items():
        if value is None:
            continue
        if table.get(key) != value:
            table[key] = value


def update_config(doc: TOMLDocument, target: CodexTarget, where: Path) -> tuple[bool, list[str]]:
    """Add or update the provider; drop our legacy profile table. Returns (legacy removed, warnings)."""
    providers = _table(doc, "model_providers", where=where, super_table=True)
    values = {
        "name": "codexpc (local gpt-oss)",
        "base_url": target.base_url,
        "wire_api": "responses",
        "stream_idle_timeout_ms": STREAM_IDLE_TIMEOUT_MS,
    }
    if PROVIDER in providers:
        _set(_table(providers, PROVIDER, where=where), values)
    else:
        fresh = tomlkit.table()
        _set(fresh, values)
        fresh.add(tomlkit.nl())  # a blank line before whatever table follows
        providers[PROVIDER] = fresh
    removed = False
    profiles = doc.get("profiles")
    if isinstance(profiles, Table) and PROFILE in profiles:
        del profiles[PROFILE]
        removed = True
        if not profiles:
            del doc["profiles"]
    warnings: list[str] = []
    if doc.get("profile") == PROFILE:
        del doc["profile"]
        removed = True
    elif "profile" in doc or isinstance(doc.get("profiles"), Table):
        warnings.append(
            f"{where} still has a legacy `profile =` selector or `[profiles.*]` tables of your own; "
            "Codex 0.134+ refuses those with --profile (move them to NAME.config.toml files)"
        )
    return removed, warnings


def update_profile(doc: TOMLDocument, target: CodexTarget, catalog_file: Path | None = None) -> None:
    if not doc.body:
        for line in PROFILE_HEADER:
            doc.add(tomlkit.comment(line))
    _set(
        doc,
        {
            "model": target.model,
            "model_provider": PROVIDER,
            "model_reasoning_effort": target.effort,
            "model_context_window": target.context_window,
            "model_catalog_json": str(catalog_file) if catalog_file is not None else None,
            "model_reasoning_summary": REASONING_SUMMARY if catalog_file is not None else None,
        },
    )


def catalog_text(target: CodexTarget) -> str:
    window = target.context_window
    models = [CatalogModel(name, window) if window else CatalogModel(name) for name in target.catalog_names]
    return json.dumps(catalog(models), indent=2) + "\n"


def _write_text_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def _write_if_changed(path: Path, doc: TOMLDocument) -> bool:
    text = tomlkit.dumps(doc)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)  # keep the user's permissions
        os.replace(tmp, path)  # atomic: Codex never reads a half-written file
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def apply(target: CodexTarget, home: Path | None = None) -> CodexConfigResult:
    """Write (or update) the provider and the profile. Safe to run again: it converges."""
    home = home or codex_home()
    config_file = home / "config.toml"
    profile_file = profile_path(home)
    config_doc = _load(config_file)
    profile_doc = _load(profile_file)
    removed, warnings = update_config(config_doc, target, config_file)
    catalog_file = home / CATALOG_FILE if target.catalog_names else None
    update_profile(profile_doc, target, catalog_file)
    changed = tuple(
        path
        for path, doc in ((config_file, config_doc), (profile_file, profile_doc))
        if _write_if_changed(path, doc)
    )
    if catalog_file is not None and _write_text_if_changed(catalog_file, catalog_text(target)):
        changed += (catalog_file,)
    log.info("codex config: provider %s -> %s, changed %s", PROVIDER, target.base_url, [str(p) for p in changed])
    return CodexConfigResult(config_file, profile_file, changed, removed, tuple(warnings))


def remove(home: Path | None = None) -> tuple[Path, ...]:
    """Undo apply(): drop our provider and profile file; every other setting stays."""
    home = home or codex_home()
    config_file = home / "config.toml"
    changed: list[Path] = []
    if config_file.exists():
        doc = _load(config_file)
        providers = doc.get("model_providers")
        if isinstance(providers, Table) and PROVIDER in providers:
            del providers[PROVIDER]
            if not providers:
                del doc["model_providers"]
            if not tomlkit.dumps(doc).strip():  # only our provider was there (apply made the file)
                config_file.unlink()
                changed.append(config_file)
            elif _write_if_changed(config_file, doc):
                changed.append(config_file)
    for path in (profile_path(home), home / CATALOG_FILE):
        if path.exists():
            path.unlink()
            changed.append(path)
    return tuple(changed)
