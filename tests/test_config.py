"""load_config: the file, the environment and the CLI, and an error naming each bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexpc import settings
from codexpc.config import DaemonConfig, load_config
from codexpc.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (settings.ENV_PORT, settings.ENV_DEVICE, settings.ENV_CONFIG, settings.ENV_VOCAB):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.setenv(settings.ENV_RUNTIME_DIR, str(tmp_path / "run"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config()
    assert config.default_model == "gpt-oss-20b"
    assert config.listen.hosts == ("127.0.0.1", "::1")
    assert config.listen.port == settings.DEFAULT_PORT
    assert config.listen.socket_path == tmp_path / "run" / "codexpc.sock"
    assert config.config_path is None
    assert config.find_model("gpt-oss:20b") is config.model


def test_file_models_aliases_and_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
default_model = "gpt-oss-120b"
device = "cuda:1"
default_reasoning_effort = "high"
[listen]
port = 9000
hosts = ["127.0.0.1"]
socket = "/tmp/x/codexpc.sock"
[limits]
max_output_tokens = 1000
default_max_output_tokens = 500
shutdown_timeout_s = 2
[models."gpt-oss-20b"]
checkpoint = "~/m/20b"
[models."gpt-oss-120b"]
checkpoint = "/m/120b"
engine = "paged"
aliases = ["big"]
[models.toy]
engine = "scripted"
""",
    )
    config = load_config(path)
    assert config.config_path == path
    assert config.model.name == "gpt-oss-120b" and config.model.engine == "paged"
    assert config.find_model("big") is config.find_model("gpt-oss:120b") is config.model
    assert config.find_model("gpt-oss-20b").checkpoint == Path("~/m/20b").expanduser()  # type: ignore[union-attr]
    assert config.find_model("toy").engine == "scripted"  # type: ignore[union-attr]
    assert config.find_model("nope") is None
    assert (config.device, config.default_reasoning_effort) == ("cuda:1", "high")
    assert (config.listen.port, config.listen.hosts) == (9000, ("127.0.0.1",))
    assert config.limits.max_output_tokens == 1000
    assert config.limits.shutdown_timeout_s == 2.0


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'device = "cpu"\n[listen]\nport = 9000\n')
    monkeypatch.setenv(settings.ENV_PORT, "9100")
    monkeypatch.setenv(settings.ENV_DEVICE, "cuda")
    config = load_config(path)
    assert (config.listen.port, config.device) == (9100, "cuda")
    config = load_config(path, {"port": 9200, "device": None})
    assert (config.listen.port, config.device) == (9200, "cuda")


def test_default_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_CONFIG, str(write(tmp_path, "[listen]\nport = 1234\n")))
    assert load_config().listen.port == 1234


def test_cli_model_checkpoint_and_engine(tmp_path: Path) -> None:
    config = load_config(None, {"model": "gpt-oss:20b", "checkpoint": str(tmp_path), "engine": "torch"})
    assert config.model.checkpoint == tmp_path
    config = load_config(None, {"model": "gpt-oss-120b", "checkpoint": "/c"})
    assert config.model.name == "gpt-oss-120b" and config.find_model("gpt-oss:120b") is config.model
    assert config.find_model("gpt-oss-20b") is not None  # the built-in entry stays
    config = load_config(None, {"model": "toy", "engine": "scripted"})
    assert config.require_servable().engine == "scripted"


def test_require_servable_needs_a_checkpoint() -> None:
    with pytest.raises(ConfigError, match=r'models."gpt-oss-20b".checkpoint'):
        load_config().require_servable()


@pytest.mark.parametrize(
    ("text", "overrides", "names"),
    [
        ("[listen]\nport = 70000\n", {}, "listen.port"),
        ("[listen]\nport = true\n", {}, "listen.port"),
        ("[listen]\nhosts = ['example.com']\n", {}, "listen.hosts"),
        ("[listen]\nhosts = ['0.0.0.0']\n", {}, "allow_non_loopback"),
        ("[listen]\nhosts = ['0.0.0.0']\nallow_non_loopback = true\n", {}, "token_file"),
        ("[listen]\ntcp = false\nunix = false\n", {}, "listen.tcp"),
        ("[listen]\nbogus = 1\n", {}, "listen.bogus"),
        ("[listen]\nsocket_path = '/x'\n", {}, "listen.socket_path"),
        ("[limits]\nqueue_size = 0\n", {}, "limits.queue_size"),
        ("[limits]\nmax_output_tokens = 10\n", {}, "default_max_output_tokens"),
        ('[models."m"]\nengine = "tpu"\n', {}, 'models."m".engine'),
        ('[models."m"]\ncheckpoint = 3\n', {}, 'models."m".checkpoint'),
        ('[models.a]\naliases = ["x"]\n[models.b]\naliases = ["x"]\n', {}, 'models."b"'),
        ('default_model = "ghost"\n', {}, "default_model"),
        ('default_reasoning_effort = "ultra"\n', {}, "default_reasoning_effort"),
        ("wat = 1\n", {}, "wat"),
        ("listen = 3\n", {}, "listen"),
        ("", {"port": -1}, "--port"),
        ("", {"effort": "extreme"}, "--effort"),
        ("", {"colour": "red"}, "colour"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, text: str, overrides: dict, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    assert names in str(info.value)


def test_broken_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="config.toml"):
        load_config(write(tmp_path, "port = = 3"))


def test_non_loopback_with_token_is_allowed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    config = load_config(None, {"hosts": ["0.0.0.0"], "allow_non_loopback": True, "token_file": str(token)})
    assert config.listen.hosts == ("0.0.0.0",) and config.listen.token_file == token
    assert load_config(None, {"hosts": "localhost"}).listen.hosts == ("127.0.0.1",)


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.device = "cpu"  # type: ignore[misc]
    assert isinstance(config, DaemonConfig)


def test_overrides_are_kept_for_reload(tmp_path: Path) -> None:
    path = write(tmp_path, 'vocab = "/v/o200k_base.tiktoken"\n[listen]\nport = 9000\n')
    config = load_config(path, {"port": 9001, "hosts": ["127.0.0.1"], "device": None})
    assert dict(config.overrides) == {"port": 9001, "hosts": ("127.0.0.1",)}
    assert config.vocab == Path("/v/o200k_base.tiktoken")
    again = load_config(config.config_path, dict(config.overrides))
    assert again == config
    hash(again)


def test_every_limit_can_be_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nqueue_size = 3\n")
    config = load_config(path, {"shutdown_timeout_s": 0.5, "max_body_bytes": 1000})
    assert config.limits.queue_size == 3
    assert (config.limits.shutdown_timeout_s, config.limits.max_body_bytes) == (0.5, 1000)
    with pytest.raises(ConfigError, match="--max-body-bytes"):
        load_config(None, {"max_body_bytes": 0})


def test_every_problem_in_a_file_is_reported_at_once_with_the_nearest_key(tmp_path: Path) -> None:
    # Issue 16, item 7: main reported only the first unknown key, with no suggestion.
    path = write(tmp_path, 'devce = "cpu"\nport = 9000\n[listen]\nprot = 1\n[limits]\nqueue_size = 0\n'
                           '[models."m"]\nengin = "paged"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"config file {path} has 5 problems" in message
    assert "unknown setting devce (did you mean device?)" in message
    assert "unknown setting port (did you mean listen.port?)" in message
    assert "unknown setting listen.prot (did you mean listen.port?)" in message
    assert "limits.queue_size must be positive" in message
    assert 'unknown setting models."m".engin (did you mean models."m".engine?)' in message


def test_flags_are_checked_all_at_once_too() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"port": -1, "effort": "extreme"})
    assert "the command line has 2 problems" in str(info.value)
    assert "--port" in str(info.value) and "--effort" in str(info.value)


def test_codexpc_vocab_beats_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12: the documented order is flags > environment > file; on main the file won.
    path = write(tmp_path, 'vocab = "/file/o200k_base.tiktoken"\n')
    monkeypatch.setenv(settings.ENV_VOCAB, "/env/o200k_base.tiktoken")
    assert load_config(path).vocab == Path("/env/o200k_base.tiktoken")
    assert load_config(path, {"vocab": "/flag/v.tiktoken"}).vocab == Path("/flag/v.tiktoken")
    monkeypatch.delenv(settings.ENV_VOCAB)
    assert load_config(path).vocab == Path("/file/o200k_base.tiktoken")


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_devices_the_engines_take_are_accepted(tmp_path: Path, device: str) -> None:
    assert load_config(write(tmp_path, f'device = "{device}"\n')).device == device


def test_mps_is_refused_with_the_way_to_a_macs_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12: the docs offered device = "mps", which the engine then refused at load time.
    import codexpc.config as config_docs

    assert '"mps"' not in (config_docs.__doc__ or "")
    for source in (lambda: load_config(write(tmp_path, 'device = "mps"\n')),
                   lambda: load_config(None, {"device": "mps"})):
        with pytest.raises(ConfigError, match='engine = "mlx"') as info:
            source()
        assert 'device = "auto"' in str(info.value)
    monkeypatch.setenv(settings.ENV_DEVICE, "mps")
    with pytest.raises(ConfigError, match="CODEXPC_DEVICE 'mps'"):
        load_config()
    monkeypatch.setenv(settings.ENV_DEVICE, "gpu")
    with pytest.raises(ConfigError, match="not a device"):
        load_config()


def test_a_client_reads_only_the_socket_from_a_broken_file(tmp_path: Path) -> None:
    from codexpc.config import client_socket

    path = write(tmp_path, 'devce = "cpu"\n[listen]\nsocket = "/tmp/x/s.sock"\nprot = 1\n')
    assert client_socket(path) == (Path("/tmp/x/s.sock"), None)
    unreadable = write(tmp_path, "port = = 3")
    socket, warning = client_socket(unreadable)
    assert socket == tmp_path / "run" / "codexpc.sock" and warning is not None and "default socket" in warning
    with pytest.raises(ConfigError, match="does not exist"):
        client_socket(tmp_path / "absent.toml")
