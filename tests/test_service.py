"""The user service: the systemd unit and launchd plist as written, and `install` where no manager runs."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codexpc.service import launchd, manager, systemd
from codexpc.service.spec import ServiceSpec, build_spec

ROOT = Path(__file__).resolve().parent.parent


def _spec() -> ServiceSpec:
    return build_spec(["--checkpoint", "/models/gpt oss 20b"], log_file=Path("/tmp/codexpc-test/launchd.log"))


def test_spec_runs_this_installation_by_absolute_path() -> None:
    spec = _spec()
    assert spec.program[0] == str(Path(sys.executable).absolute())
    assert spec.program[1:4] == ("-m", "codexpc", "serve")
    assert spec.environment["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).absolute().parent)


def test_unit_quotes_paths_and_restarts_on_failure() -> None:
    unit = systemd.render_unit(_spec())
    assert f'ExecStart="{sys.executable}" "-m" "codexpc" "serve" "--checkpoint" "/models/gpt oss 20b"' in unit
    assert "Restart=on-failure" in unit
    assert "RestartPreventExitStatus=2 3 4" in unit
    assert "StandardError=journal" in unit
    assert 'Environment="PYTHONUNBUFFERED=1"' in unit
    assert "WantedBy=default.target" in unit


def test_unit_escapes_specifiers() -> None:
    spec = ServiceSpec(program=("/usr/bin/python3", "100%", "$HOME"))
    assert '"100%%" "$$HOME"' in systemd.render_unit(spec)


def _verify(unit_text: str, tmp_path: Path) -> str:
    """systemd-analyze's complaints about a unit (an empty string when it has none)."""
    folder = tmp_path / "units"
    folder.mkdir(exist_ok=True)
    unit = folder / systemd.UNIT
    unit.write_text(unit_text)
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, env=env)
    if "Failed to initialize manager" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()[:200]}")
    return "\n".join(line for line in result.stderr.splitlines() if systemd.UNIT in line)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = systemd.render_unit(_spec())
    assert _verify(unit, tmp_path) == ""
    # The check has teeth: a misspelt key and a bad value are reported.
    assert "Tpe" in _verify(unit.replace("Type=", "Tpe="), tmp_path)


def test_plist_is_valid_and_keeps_alive_on_failure() -> None:
    agent = plistlib.loads(launchd.render_plist(_spec()))
    assert agent["Label"] == launchd.LABEL
    assert agent["ProgramArguments"][0] == str(Path(sys.executable).absolute())
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["RunAtLoad"] is True
    assert agent["StandardErrorPath"] == "/tmp/codexpc-test/launchd.log"
    assert agent["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1"


def _user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEXPC_", "XDG_", "DBUS_", "JOURNAL_"))}
    home = tmp_path / "home"
    home.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)  # no `bus` inside: no user manager, as in a container
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".state"), "XDG_RUNTIME_DIR": str(runtime)}


def _codexpc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codexpc", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.skipif(sys.platform == "darwin", reason="drives the systemd path")
def test_install_without_a_user_manager_says_what_to_do(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    config = tmp_path / "codexpc.toml"
    config.write_text('[models."gpt-oss-20b"]\nengine = "scripted"\n')
    result = _codexpc(env, "install", "--model", "gpt-oss-20b", "--config", str(config))
    assert result.returncode == 0, result.stderr
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "codexpc.service"
    assert unit.exists()
    assert "Not started: no systemd user manager is running here" in result.stdout
    assert "systemctl --user enable --now codexpc.service" in result.stdout
    assert f"{sys.executable} -m codexpc serve --config {config} --model gpt-oss-20b" in result.stdout
    removed = _codexpc(env, "uninstall", "--json")
    assert removed.returncode == 0 and not unit.exists()


def test_install_print_changes_nothing(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    result = _codexpc(env, "install", "--print")
    assert result.returncode == 0
    assert ("[Service]" in result.stdout) or ("<plist" in result.stdout)
    assert not (Path(env["XDG_CONFIG_HOME"]) / "systemd").exists()


def test_install_refuses_what_the_service_could_not_serve(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    result = _codexpc(env, "install", "--checkpoint", str(tmp_path / "nope"))
    assert result.returncode == 4
    assert "does not exist" in result.stderr
    unset = _codexpc(env, "install")  # no checkpoint anywhere: it would fail at every start
    assert unset.returncode == 2
    assert "checkpoint is not set" in unset.stderr
    assert not (Path(env["XDG_CONFIG_HOME"]) / "systemd").exists()


def test_install_runs_the_manager_commands_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one place a user manager cannot exist here; the runner records instead of running.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(manager, "platform_manager", lambda: "systemd")
    monkeypatch.setattr(systemd, "manager_problem", lambda: None)
    ran: list[list[str]] = []

    def recording_runner(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    report = manager.install(_spec(), run=recording_runner)
    assert report.active and report.path == tmp_path / "systemd" / "user" / systemd.UNIT
    assert ran == systemd.enable_commands()


def test_install_puts_the_command_on_a_new_shells_path(tmp_path: Path) -> None:
    # Issue 16, item 1: after the README's setup a new shell answered `codexpc: command not found`.
    env = {**_user_env(tmp_path), "PATH": "/usr/bin:/bin"}
    home = Path(env["HOME"])
    result = _codexpc(env, "install", "--command-only")
    assert result.returncode == 0, result.stderr
    link = home / ".local" / "bin" / "codexpc"
    assert link.is_symlink() and link.resolve() == (Path(sys.executable).absolute().parent / "codexpc").resolve()
    assert f"{link.parent} is not on your PATH" in result.stdout  # this PATH lacks it: say what to do
    # A login shell of a Debian/Ubuntu user (the stock ~/.profile) finds it by name.
    skel = Path("/etc/skel/.profile")
    if skel.exists():
        (home / ".profile").write_text(skel.read_text())
        shell = subprocess.run(["bash", "-lc", "codexpc --version"], env=env, capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
        assert shell.returncode == 0 and shell.stdout.startswith("codexpc "), shell.stderr
    again = _codexpc({**env, "PATH": f"{link.parent}:/usr/bin:/bin"}, "install", "--command-only")
    assert again.returncode == 0 and "not on your PATH" not in again.stdout
    assert _codexpc(env, "uninstall").returncode == 0
    assert not link.is_symlink()


def test_install_leaves_a_command_that_is_not_its_link(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    other = Path(env["HOME"]) / ".local" / "bin" / "codexpc"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    result = _codexpc(env, "install", "--command-only")
    assert result.returncode == 1 and "is not a link" in result.stderr
    assert other.read_text() == "#!/bin/sh\n"


def test_unit_restarts_a_crash_within_a_second_and_reads_back() -> None:
    spec = ServiceSpec(program=("/usr/bin/python3", "-m", "codexpc", "serve", "--checkpoint", "/m/gpt oss 100%"),
                       environment={"CODEXPC_CACHE_DIR": "/c/$HOME dir", "PATH": "/usr/bin"})
    unit = systemd.read_unit(systemd.render_unit(spec))
    assert unit.argv == spec.program and unit.environment == dict(spec.environment)  # the quoting reads back
    assert (unit.restart, unit.restart_sec) == ("on-failure", 1)
    assert unit.restarts_after(-9) and unit.restarts_after(1)  # kill -9, a crash
    assert not unit.restarts_after(0) and not unit.restarts_after(3)  # a clean stop; a bad config
