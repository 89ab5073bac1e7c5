"""Settings every module relies on, and the CLI's promise: one `error:` line, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from shared.__main__ import main
from shared.engine import config
from shared.engine.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)],
)
def test_quick_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(config.QUICK_ENV, value)
    assert config.quick_mode() is expected


def test_quick_mode_is_off_by_default(monkeypatch):
    monkeypatch.delenv(config.QUICK_ENV, raising=False)
    assert config.quick_mode() is False


def test_project_root_is_found_from_the_lessons_folder():
    assert config.project_root(ROOT / "lessons") == ROOT
    assert config.project_root(ROOT / "shared" / "checks") == ROOT


def test_data_dir_defaults_to_data_at_the_root_and_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(config.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(ROOT / "lessons" if (ROOT / "lessons").is_dir() else ROOT)
    assert config.default_data_dir() == ROOT / "data"
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path))
    assert config.default_data_dir() == tmp_path


def test_pick_device_auto_gives_an_available_device():
    import torch

    device = config.pick_device("auto")
    assert device in {"cpu", "cuda", "mps"}
    torch.zeros(1, device=device)  # it really is usable


def test_pick_device_refuses_unknown_or_unavailable_devices():
    import torch

    with pytest.raises(CourseError, match="unknown device"):
        config.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(CourseError, match="no CUDA GPU"):
            config.pick_device("cuda")


def test_bad_flag_gives_one_error_line(capsys):
    assert main(["--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_course_error_becomes_one_line_and_exit_code_2(monkeypatch, capsys):
    import shared.course.cli as cli

    def explode(args):
        raise CourseError("the thing is wrong; do this instead")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=explode)
    assert cli.main([]) == 2
    assert capsys.readouterr().err == "error: the thing is wrong; do this instead\n"


def test_help_lists_the_pipeline_commands():
    result = subprocess.run(
        [sys.executable, "-m", "shared", "--help"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    for command in ["data", "train", "generate", "viz", "run", "check", "grade"]:
        assert f"    {command}" in result.stdout, f"`python -m shared {command}` is missing"


def test_library_errors_name_arguments_and_the_cli_shows_them_as_flags():
    from shared.course.cli import build_parser, flag_names

    parser = build_parser()
    message = "lower `learning_rate`, drop `resume`, or pick `data_dir`; `self` stays"
    assert flag_names(message, parser) == (
        "lower --learning-rate, drop --resume, or pick --data-dir; `self` stays"
    )
