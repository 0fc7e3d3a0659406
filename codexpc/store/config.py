"""Where stored responses live and how much of them is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codexpc import settings
from codexpc.errors import ConfigError

DB_NAME = "responses.sqlite3"


def _default_folder() -> Path:
    return settings.state_dir() / "store"


@dataclass(frozen=True)
class StoreConfig:
    folder: Path = field(default_factory=_default_folder)  # made 0700; the database inside is 0600
    max_bytes: int = 256 * 1024 * 1024  # the stored JSON, summed; beyond it the oldest go first
    max_age_s: float = 30 * 24 * 3600.0  # OpenAI keeps stored responses 30 days
    enabled: bool = True  # False: store:true is honoured as store:false (nothing written)

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ConfigError(f"store.max_bytes must be positive, got {self.max_bytes}")
        if self.max_age_s <= 0:
            raise ConfigError(f"store.max_age_s must be positive, got {self.max_age_s}")

    @property
    def path(self) -> Path:
        return self.folder / DB_NAME
