"""codex-config: the user's Codex settings and comments survive; `codex -p codexpc` accepts the result."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from codexpc import codex_config
from codexpc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / ".cache" / "codex" / "node_modules" / ".bin" / "codex"

USER_CONFIG = """\
# my Codex settings: keep these comments
model = "gpt-5"   # my usual model
approval_policy = "on-request"

[model_providers.work]  # the office gateway
name = "work"
base_url = "https://gateway.example/v1"
wire_api = "responses"

[mcp_servers.docs]
command = "docs-mcp"
"""

TARGET = codex_config.CodexTarget(base_url="http://127.0.0.1:8787/v1", model="gpt-oss-20b", context_window=131072)


def _parse(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_adds_provider_and_profile_keeping_user_content(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(USER_CONFIG)
    result = codex_config.apply(TARGET, tmp_path)
    text = (tmp_path / "config.toml").read_text()
    ours = text[text.index("[model_providers.codexpc]") : text.index("[mcp_servers.docs]")]
    assert text.replace(ours, "") == USER_CONFIG  # the user's text untouched, comments and order included
    parsed = _parse(tmp_path / "config.toml")
    assert parsed["model_providers"]["codexpc"] == {
        "name": "codexpc (local gpt-oss)",
        "base_url": "http://127.0.0.1:8787/v1",
        "wire_api": "responses",
        "stream_idle_timeout_ms": codex_config.STREAM_IDLE_TIMEOUT_MS,
    }
    assert parsed["model_providers"]["work"]["base_url"] == "https://gateway.example/v1"
    profile = _parse(tmp_path / "codexpc.config.toml")
    assert profile == {"model": "gpt-oss-20b", "model_provider": "codexpc", "model_context_window": 131072}
    assert set(result.changed) == {tmp_path / "config.toml", tmp_path / "codexpc.config.toml"}


def test_second_run_changes_nothing_and_update_keeps_user_keys(tmp_path: Path) -> None:
    codex_config.apply(TARGET, tmp_path)
    assert codex_config.apply(TARGET, tmp_path).changed == ()
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace('wire_api = "responses"', 'wire_api = "responses"\nrequest_max_retries = 2  # mine'))
    moved = codex_config.CodexTarget(base_url="http://127.0.0.1:9999/v1")
    codex_config.apply(moved, tmp_path)
    provider = _parse(config)["model_providers"]["codexpc"]
    assert provider["base_url"] == "http://127.0.0.1:9999/v1"
    assert provider["request_max_retries"] == 2
    assert "# mine" in config.read_text()


def test_legacy_profile_table_is_moved_out(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        USER_CONFIG + '\n[profiles.codexpc]\nmodel = "old"\n\n[profiles.mine]\nmodel = "o3"\n'
    )
    result = codex_config.apply(TARGET, tmp_path)
    parsed = _parse(tmp_path / "config.toml")
    assert "codexpc" not in parsed["profiles"]
    assert parsed["profiles"]["mine"] == {"model": "o3"}
    assert result.removed_legacy_profile
    assert result.warnings  # the user's own legacy table still stops `codex --profile`


def test_broken_toml_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        codex_config.apply(TARGET, tmp_path)
    assert (tmp_path / "config.toml").read_text() == "model = \n"


def test_remove_undoes_apply_only(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(USER_CONFIG)
    codex_config.apply(TARGET, tmp_path)
    codex_config.remove(tmp_path)
    assert (tmp_path / "config.toml").read_text().rstrip("\n") == USER_CONFIG.rstrip("\n")
    assert not (tmp_path / "codexpc.config.toml").exists()


def test_remove_leaves_no_empty_file_where_none_was(tmp_path: Path) -> None:
    # Issue 16, item 10: on main `codex-config --remove` left a 0-byte config.toml behind.
    codex_config.apply(TARGET, tmp_path)
    assert (tmp_path / "config.toml").exists()
    removed = codex_config.remove(tmp_path)
    assert not (tmp_path / "config.toml").exists() and not (tmp_path / "codexpc.config.toml").exists()
    assert tmp_path / "config.toml" in removed


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEXPC_", "XDG_", "CODEX_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "XDG_CONFIG_HOME": str(home / ".config")}


def test_cli_writes_codex_home_from_environment(tmp_path: Path) -> None:
    env = _env(tmp_path)
    codex_home = Path(env["CODEX_HOME"])
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(USER_CONFIG)
    run = subprocess.run(
        [sys.executable, "-m", "codexpc", "codex-config", "--port", "8799", "--json"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert '"base_url": "http://127.0.0.1:8799/v1"' in run.stdout
    assert _parse(codex_home / "config.toml")["model_providers"]["codexpc"]["base_url"] == "http://127.0.0.1:8799/v1"
    assert (codex_home / "config.toml").read_text().startswith("# my Codex settings")


@pytest.mark.skipif(not CODEX.exists(), reason="the Codex CLI is not installed (make codex-cli)")
def test_real_codex_accepts_the_profile(tmp_path: Path) -> None:
    env = _env(tmp_path)
    codex_home = Path(env["CODEX_HOME"])
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(USER_CONFIG + '\n[profiles.codexpc]\nmodel = "legacy"\n')

    def codex_loads() -> subprocess.CompletedProcess[str]:
        # `mcp list` loads and checks the whole config (profile, provider) and needs no network.
        return subprocess.run([str(CODEX), "-p", "codexpc", "mcp", "list"], env=env, capture_output=True,
                              text=True, timeout=60)

    before = codex_loads()
    assert before.returncode != 0 and "legacy" in before.stderr  # what an old-style setup meets
    subprocess.run([sys.executable, "-m", "codexpc", "codex-config"], env=env, check=True, timeout=60, cwd=ROOT,
                   capture_output=True)
    after = codex_loads()
    assert after.returncode == 0, after.stderr


def test_profile_asks_for_the_reasoning_summary_and_says_how_to_see_the_raw_text(tmp_path: Path) -> None:
    target = codex_config.CodexTarget("http://127.0.0.1:8787/v1", catalog_names=("gpt-oss-20b",))
    codex_config.apply(target, tmp_path)
    text = (tmp_path / "codexpc.config.toml").read_text()
    assert _parse(tmp_path / "codexpc.config.toml")["model_reasoning_summary"] == "detailed"
    assert "show_raw_agent_reasoning = true" in text  # in the header comment: Codex reads the key from a profile
