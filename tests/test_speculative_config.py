"""`[models."x".speculative]` in the config file: off by default, read into SpeculativeSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexpc.config import SpeculativeSettings, load_config
from codexpc.errors import ConfigError


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[models."gpt-oss-20b"]\ncheckpoint = "/m/20b"\n' + body)
    return path


def test_speculation_is_off_unless_the_file_turns_it_on(tmp_path: Path) -> None:
    entry = load_config(config_file(tmp_path, "")).require_servable()
    assert entry.speculative == SpeculativeSettings(enabled=False, k=4, min_match=3)
    on = load_config(config_file(tmp_path, '[models."gpt-oss-20b".speculative]\nenabled = true\nk = 6\n'))
    assert on.require_servable().speculative == SpeculativeSettings(enabled=True, k=6, min_match=3)


@pytest.mark.parametrize("body, message", [("k = 0", "speculative.k must be positive"),
                                           ("depth = 2", "unknown setting models.\"gpt-oss-20b\".speculative.depth"),
                                           ("enabled = 1", "speculative.enabled must be true or false")])
def test_bad_speculative_settings_name_the_setting(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(config_file(tmp_path, f'[models."gpt-oss-20b".speculative]\n{body}\n'))
