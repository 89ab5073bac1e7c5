"""`run`'s flags, `--help` (fast, with defaults), unknown flags, files that are not ours."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import pytest
from _cli import run_cli
from test_cli import ROOT, assert_one_error_line, tiny_data  # noqa: F401 - fixture

import shared.course.pipeline
from shared.course.cli import build_parser
from shared.course.defaults import CPU_RECIPE
from shared.engine.errors import shared_command


def test_building_the_parser_does_not_import_torch():
    code = "import sys; from shared.course.cli import build_parser; build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'numpy', 'matplotlib'}))"  # noqa: E501
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_the_help_shows_the_recipe_defaults(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for flag, value in [("--batch-size", "32"), ("--n-layer", "4"), ("--time-budget", "240")]:
        options = out.split("options:")[1]
        line = options[options.index(flag + " ") :].split("\n  --")[0]
        assert f"default: {value} in the CPU recipe" in " ".join(line.split()), line
    assert "default: the fastest count" in " ".join(out.split())
    code, out, _ = run_cli(["run", "--help"], capsys)
    text = " ".join(out.split())
    for flag in ("--url", "--data-dir", "--max-iters", "--num-threads", "--device", "--seed"):
        assert flag in text
    assert "(default: 240)" in text and "(default: 'En un lugar de la Mancha, ')" in text


def test_the_help_defaults_are_the_recipe(monkeypatch):
    monkeypatch.delenv("GPT_COURSE_QUICK", raising=False)
    from shared.engine.train_config import modern_train_config

    config = modern_train_config()  # the default of `train` and `run` on the CPU
    actual = {**asdict(config), **asdict(config.model)}
    assert {name: actual[name] for name in CPU_RECIPE} == CPU_RECIPE


def test_every_optional_flag_with_a_default_says_it():
    parser = build_parser()
    for name, command in parser._subparsers._group_actions[0].choices.items():
        for action in command._actions:
            has_default = action.default not in (None, False, "==SUPPRESS==") and action.nargs != 0
            if action.option_strings and has_default:
                assert "default" in (action.help or ""), (name, action.option_strings)


@pytest.mark.parametrize(
    "argv, suggestion, command",
    [
        (["run", "--time-bugdet", "3"], "did you mean --time-budget?", "run"),
        (["train", "--learning_rate", "1"], "did you mean --learning-rate?", "train"),
        (["generate", "--temprature=3"], "did you mean --temperature?", "generate"),
    ],
)
def test_an_unknown_flag_names_the_closest_and_its_commands_help(capsys, argv, suggestion, command):
    code, out, err = run_cli(argv, capsys)
    assert_one_error_line(code, err, "unrecognized arguments", suggestion)
    assert f"`{shared_command(command)} --help`" in err and out == ""


def test_an_unknown_flag_far_from_every_flag_gets_no_guess(capsys):
    code, _, err = run_cli(["train", "--zzzz"], capsys)
    assert_one_error_line(code, err, "--zzzz", f"`{shared_command('train')} --help`")
    assert "did you mean" not in err


def test_run_passes_every_flag_on(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(shared.course.pipeline, "run", lambda *a, **k: calls.append((a, k)))
    argv = ["run", "--url", "http://example.org/q.txt", "--data-dir", tmp_path / "d",
            "--time-budget", "30", "--max-iters", "7", "--num-threads", "1", "--device", "cpu",
            "--seed", "5", "--checkpoint", tmp_path / "g.pt", "--outputs-dir", tmp_path / "o"]  # fmt: skip
    code, _, _ = run_cli(argv, capsys)
    assert code == 0
    (args, kwargs), = calls  # fmt: skip
    assert args[0] == tmp_path / "d" and args[3] == 30.0 and args[6] == 5 and args[7] == "cpu"
    assert kwargs["url"] == "http://example.org/q.txt"
    assert kwargs["max_iters"] == 7 and kwargs["num_threads"] == 1
    assert run_cli(["run", *argv[-4:]], capsys)[0] == 0
    assert (
        len(calls) == 2 and calls[-1][0][3] == -1.0 and calls[-1][1]["max_iters"] is None
    )  # the recipe's own


def test_run_trains_max_iters_and_ends_with_what_happened(tmp_path, tiny_data, capsys):  # noqa: F811
    code, out, _ = run_cli(
        ["run", "--checkpoint", tmp_path / "gpt.pt", "--outputs-dir", tmp_path / "out",
         "--max-iters", 3, "--num-threads", 1, "--seed", 3, "--max-new-chars", 30, "--no-gif",
         "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert "trained 3 steps (step 3)" in out and "tokens/s" in out and "final val loss" in out
    assert f"checkpoint: {tmp_path / 'gpt.pt'}" in out and "sample.txt" in out
    assert f"next: {shared_command('generate')} --checkpoint {tmp_path / 'gpt.pt'}" in out
    sample = (tmp_path / "out" / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("En un lugar de la Mancha, ")  # not glued to the sample


@pytest.mark.parametrize("command, flag", [("run", "--checkpoint"), ("train", "--out")])
def test_a_file_that_is_not_a_checkpoint_is_never_overwritten(tmp_path, capsys, command, flag):
    notes = tmp_path / "notas.txt"
    notes.write_text("mis notas\n", encoding="utf-8")
    code, _, err = run_cli([command, flag, notes], capsys)
    assert_one_error_line(code, err, "not a checkpoint", "new file name")
    assert "delete" not in err and notes.read_text(encoding="utf-8") == "mis notas\n"
