"""`codexpc checkpoint write` then `inspect`, for each layout; what a wrong path gives.

Most cases call the CLI's entry point in this process (the same argv a user types, without a
fresh interpreter and torch import each time); one runs it as a subprocess end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_daemon import codexpc, user_env

from codexpc.cli.main import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("layout", ["original", "hf", "metal"])
def test_write_then_inspect(layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, written = _cli(capsys, "checkpoint", "write", "--size", "tiny", "--layout", layout, "--out", str(tmp_path / layout))
    assert code == 0 and written["layout"] == layout
    code, info = _cli(capsys, "checkpoint", "inspect", written["path"])
    assert code == 0
    assert info["layout"] == layout and info["config"]["num_experts"] == 4
    assert info["shapes"]["embedding.weight"][1] == 64
    assert info["vocabulary"].startswith("ok")


def test_inspect_reads_for_people(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    out = tmp_path / "tiny"
    assert codexpc(env, "checkpoint", "write", "--out", str(out)).returncode == 0
    human = codexpc(env, "checkpoint", "inspect", str(out))
    assert human.returncode == 0, human.stderr
    assert "(original layout)" in human.stdout
    assert "4 layers, hidden 64" in human.stdout and "vocabulary 201088" in human.stdout
    assert "block.0.mlp.mlp1_weight.blocks" in human.stdout
    assert "vocabulary  ok" in human.stdout


def test_inspect_a_wrong_path_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, missing = _cli(capsys, "checkpoint", "inspect", str(tmp_path / "nope"))
    assert code == 4 and "does not exist" in missing["error"]["message"]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    code, junk = _cli(capsys, "checkpoint", "inspect", str(tmp_path / "junk"))
    assert code == 4 and junk["error"]["code"] == "checkpoint_invalid"


def test_write_refuses_an_unknown_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["checkpoint", "write", "--size", "7b", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_write_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 16, item 4: on main a second write silently replaced the first checkpoint.
    out = tmp_path / "ck"
    assert main(["checkpoint", "write", "--out", str(out), "--seed", "1"]) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["checkpoint", "write", "--out", str(out), "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "is not empty (it holds a random checkpoint in the original layout: " in err and "model.safetensors" in err
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "model.safetensors").read_bytes() == before
    # --force replaces it, and a layout change leaves none of the old layout's files behind.
    assert main(["checkpoint", "write", "--out", str(out), "--layout", "metal", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["RANDOM_WEIGHTS.txt", "model.bin"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    assert main(["checkpoint", "write", "--out", str(other)]) == 2
    assert "it holds files: todo.txt" in capsys.readouterr().err


def test_the_tiny_size_in_the_help_is_what_is_written(tmp_path: Path) -> None:
    # Issue 16, item 10: the help said "a few MB"; the tiny checkpoint is about 50 MB.
    from test_cli_main import _subcommands

    from codexpc.checkpoint.writer import SIZES, write_checkpoint
    from codexpc.cli.main import build_parser

    out = write_checkpoint(SIZES["tiny"], "original", tmp_path / "tiny")
    megabytes = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    text = _subcommands(build_parser())["checkpoint write"].format_help()
    assert "about 50 MB" in " ".join(text.split()) and 40 < megabytes < 60
