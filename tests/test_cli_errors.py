"""Issue #15: no input or environment a user can produce gives a traceback or loses finished work.

Most bad inputs go through ``shared.course.cli.main`` in-process (fast): each must give exactly
one ``error: ...`` line, exit code 2, and no traceback. A few real processes cover what only a
process shows (a closed pipe, an ASCII terminal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, tiny_corpus

import shared.data
import shared.engine.train_guards as train_guards
import shared.train as train_module
from shared.course.cli import main
from shared.engine.errors import shared_command
from shared.train import train

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root writes into read-only folders


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "gpt.pt"
    train(tiny_corpus(), tiny_config(max_iters=3), out=path, progress=False)
    return path


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def edited(checkpoint: Path, folder: Path, edit) -> Path:
    """A copy of ``checkpoint`` with ``edit(raw_dict)`` applied, as a hand-editor would."""
    raw = torch.load(checkpoint, weights_only=True)
    edit(raw)
    path = folder / "edited.pt"
    torch.save(raw, path)
    return path


# ----------------------------------------------------------------------------- numbers
BAD_NUMBERS = {
    "data": [
        ("--timeout", "nan"), ("--timeout", "inf"), ("--timeout", "0"), ("--timeout", "-1"),
        ("--timeout", "1e400"), ("--timeout", "99999"), ("--retries", "-1"),
        ("--retries", "1.5"), ("--retries", "1000"),
    ],
    "train": [
        ("--seed", str(2**64)), ("--seed", "-1"), ("--seed", "1e3"), ("--learning-rate", "inf"),
        ("--learning-rate", "nan"), ("--learning-rate", "0"), ("--learning-rate", "1e400"),
        ("--batch-size", "1000000000"), ("--batch-size", "0"), ("--batch-size", "2.5"),
        ("--time-budget", "inf"), ("--time-budget", "nan"), ("--time-budget", "-inf"),
        ("--max-iters", str(10**12)), ("--dropout", "nan"), ("--min-lr", "inf"),
        ("--grad-clip", "-1"), ("--eval-iters", "99999999"), ("--num-threads", "0"),
        ("--n-embd", "100000"), ("--block-size", "-5"), ("--warmup-iters", "nan"),
    ],
    "generate": [
        ("--temperature", "nan"), ("--temperature", "1e-40"), ("--temperature", "inf"),
        ("--top-p", "1e-46"), ("--top-p", "nan"), ("--top-k", str(10**20)),
        ("--seed", str(2**64)), ("--max-new-chars", str(10**12)),
    ],
    "viz": [
        ("--fps", "nan"), ("--fps", "inf"), ("--fps", "0"), ("--fps", "1e9"),
        ("--temperature", "nan"), ("--layer", "1.5"), ("--head", str(10**30)),
        ("--max-new-chars", "0"), ("--max-new-chars", str(10**9)), ("--seed", "-3"),
    ],
    "run": [
        ("--time-budget", "inf"), ("--seed", str(2**64)), ("--max-new-chars", "0"),
        ("--max-new-chars", "nan"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", list(BAD_NUMBERS))
def test_numbers_at_the_edge_of_their_type_are_one_error_line(command, capsys):
    for flag, value in BAD_NUMBERS[command]:
        code, out, err = run_cli([command, flag, value], capsys)
        line = assert_one_error_line(code, err, flag)
        assert any(word in line for word in ("must be", "expected")), line
        assert out == ""


def test_messages_state_the_allowed_range(capsys):
    _, _, err = run_cli(["generate", "--temperature", "1e-40"], capsys)
    assert ">= 0.01 and <= 100" in err
    _, _, err = run_cli(["train", "--time-budget", "inf"], capsys)
    assert "'none'" in err and "> 0" in err
    _, _, err = run_cli(["train", "--seed", str(2**64)], capsys)
    assert str(2**63 - 1) in err


def test_edge_values_inside_the_range_work(checkpoint, capsys):
    code, out, err = run_cli(
        ["generate", "--checkpoint", checkpoint, "--temperature", "0.01", "--top-p", "1e-6",
         "--seed", str(2**63 - 1), "--max-new-chars", 5, "--prompt", "En"],
        capsys,
    )  # fmt: skip
    assert code == 0 and out.startswith("En") and len(out.rstrip("\n")) == 7, err


# ----------------------------------------------------------------------------- output paths
def bad_paths(tmp_path: Path) -> dict:
    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    return {"file": a_file, "below_file": a_file / "sub" / "out", "folder": folder}


@pytest.mark.parametrize("kind", ["folder", "below_file"])
def test_train_out_is_checked_before_training(tmp_path, tiny_data, capsys, monkeypatch, kind):
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("trained anyway"))
    out = bad_paths(tmp_path)[kind]
    code, _, err = run_cli(["train", "--out", out, "--max-iters", 2], capsys)
    assert_one_error_line(code, err, "--out", str(out if kind == "folder" else out.parent))


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root can write to read-only folders")
def test_read_only_output_folder_is_refused_up_front(tmp_path, tiny_data, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run_cli(["train", "--out", locked / "gpt.pt"], capsys)
        assert_one_error_line(code, err, "cannot write into", "--out")
    finally:
        locked.chmod(0o700)


def test_full_disk_is_refused_up_front(tmp_path, tiny_data, capsys, monkeypatch):
    import shutil

    full = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: full)
    code, _, err = run_cli(["train", "--out", tmp_path / "gpt.pt"], capsys)
    assert_one_error_line(code, err, "not enough disk space", "--out")


@pytest.mark.parametrize(
    "argv_for",
    [
        lambda p: ["run", "--outputs-dir", p["file"]],
        lambda p: ["run", "--outputs-dir", p["below_file"]],
        lambda p: ["run", "--checkpoint", p["folder"]],
        lambda p: ["run", "--checkpoint", p["below_file"]],
        lambda p: ["viz", "--out", p["folder"]],
        lambda p: ["viz", "--out", Path(str(p["below_file"]) + ".gif")],
        lambda p: ["viz", "--out", p["file"]],  # not a .gif
        lambda p: ["viz", "--png-dir", p["file"]],
        lambda p: ["data", "--data-dir", p["below_file"]],
        lambda p: ["data", "--data-dir", p["file"]],
    ],
)
def test_output_paths_are_checked_before_the_work(tmp_path, tiny_data, capsys, argv_for):
    code, _, err = run_cli(argv_for(bad_paths(tmp_path)), capsys)
    assert_one_error_line(code, err, "--")
    assert not (tmp_path / "a_file").is_dir()


def test_a_failed_save_at_the_end_keeps_the_model_elsewhere(
    tmp_path, tiny_data, capsys, monkeypatch
):
    real_save = train_module.save_checkpoint
    wanted = tmp_path / "gpt.pt"

    def disk_full_for_wanted(path, **kwargs):
        if Path(path) == wanted:
            raise OSError(28, "No space left on device")
        return real_save(path, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", disk_full_for_wanted)
    code, out, err = run_cli(
        ["train", "--out", wanted, "--quiet", "--max-iters", 3, "--time-budget", "none",
         "--block-size", 16, "--batch-size", 4, "--n-layer", 1, "--n-head", 2, "--n-embd", 16,
         "--eval-iters", 1],
        capsys,
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "No space left on device" in err and "error: " in err
    rescued = Path(err.strip().split("safe at ")[1].split(":")[0])
    try:
        assert rescued.is_file() and not wanted.exists()
        assert torch.load(rescued, weights_only=True)["step"] == 3
    finally:
        rescued.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- checkpoints
DAMAGE = {
    "step is text": (lambda raw: raw.update(step="abc"), "'step'"),
    "step is negative": (lambda raw: raw.update(step=-4), "'step'"),
    "history is a number": (lambda raw: raw.update(history=5), "'history'"),
    "history lacks a key": (lambda raw: raw["history"].pop("val"), "'val'"),
    "history has text": (lambda raw: raw["history"].update(train=["x"]), "'train'"),
    "elapsed is text": (lambda raw: raw.update(elapsed="soon"), "'elapsed'"),
    "a tensor is missing": (lambda raw: raw["model"].pop("lm_head.weight"), "lm_head.weight"),
    "a weight is a string": (lambda raw: raw["model"].update({"lm_head.weight": "w"}), "tensor"),
    "vocab is a string": (lambda raw: raw.update(vocab=5), "'vocab'"),
    "optimizer is a list": (lambda raw: raw.update(optimizer=[1]), "'optimizer'"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(DAMAGE))
def test_damaged_checkpoints_are_one_line_on_generate_viz_and_resume(
    checkpoint, tmp_path, tiny_data, capsys, name
):
    edit, fragment = DAMAGE[name]
    bad = edited(checkpoint, tmp_path, edit)
    for argv in (
        ["generate", "--checkpoint", bad],
        ["viz", "--checkpoint", bad, "--out", tmp_path / "a.gif"],
        ["train", "--out", bad, "--resume", "--max-iters", 5, "--block-size", 16,
         "--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--quiet"],
    ):  # fmt: skip
        code, _, err = run_cli(argv, capsys)
        assert_one_error_line(code, err, "is damaged", fragment)


def test_resume_with_a_damaged_optimizer_state_is_one_line(checkpoint, tmp_path, tiny_data, capsys):
    bad = edited(checkpoint, tmp_path, lambda raw: raw["optimizer"].update(param_groups=[]))
    code, _, err = run_cli(
        ["train", "--out", bad, "--resume", "--max-iters", 5, "--block-size", 16, "--n-layer", 1,
         "--n-head", 2, "--n-embd", 16, "--quiet"],
        capsys,
    )  # fmt: skip
    assert_one_error_line(code, err, "is damaged", "training state")


def test_non_finite_weights_are_refused(checkpoint, tmp_path, capsys):
    bad = edited(checkpoint, tmp_path, lambda raw: raw["model"]["lm_head.weight"].fill_(torch.nan))
    for argv in (["generate", "--checkpoint", bad], ["viz", "--checkpoint", bad]):
        code, _, err = run_cli([*argv, "--seed", 1], capsys)
        assert_one_error_line(code, err, "NaN/inf weights", "--learning-rate")


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data, capsys):
    out = tmp_path / "gpt.pt"
    base = ["train", "--recipe", "classic", "--out", out, "--quiet", "--time-budget", "none", "--block-size", 16,
            "--batch-size", 4, "--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--eval-iters", 1,
            "--eval-interval", 2, "--warmup-iters", 1, "--grad-clip", 0]  # fmt: skip
    assert run_cli([*base, "--max-iters", 2], capsys)[0] == 0
    good = torch.load(out, weights_only=True)["model"]
    code, _, err = run_cli([*base, "--resume", "--max-iters", 400, "--learning-rate", 1e3], capsys)
    assert_one_error_line(code, err, "training diverged", "--learning-rate", "step 2")
    kept = torch.load(out, weights_only=True)
    assert kept["step"] == 2  # the NaN weights never replaced the last good checkpoint
    assert all(torch.equal(kept["model"][k], v) for k, v in good.items())
    code, _, _ = run_cli(["generate", "--checkpoint", out, "--max-new-chars", 3], capsys)
    assert code == 0


# ----------------------------------------------------------------------------- the net
def test_an_unexpected_exception_is_one_line_with_a_log(checkpoint, capsys, monkeypatch):
    import shared.generate

    def boom(*args, **kwargs):
        raise ZeroDivisionError("something nobody foresaw")

    monkeypatch.setattr(shared.generate, "generate", boom)
    code = main(["generate", "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"error: unexpected failure in `{shared_command('generate')}`")
    log = Path(lines[0].split("the full traceback is in ")[1].split(";")[0])
    try:
        text = log.read_text(encoding="utf-8")
        assert "Traceback" in text and "something nobody foresaw" in text
    finally:
        log.unlink()


def test_abandoned_checkpoint_temporaries_are_cleaned_at_the_next_start(
    tmp_path, tiny_data, capsys
):
    out = tmp_path / "gpt.pt"
    dead = tmp_path / ".gpt.pt.999999999.abcd.tmp"  # no process has this pid
    dead.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"
    other.write_text("keep me", encoding="utf-8")
    run_cli(["train", "--out", out, "--seed", "-1"], capsys)  # bad flag: nothing starts
    assert dead.exists()
    run_cli(["train", "--out", out, "--block-size", 4000], capsys)  # starts, then refuses
    assert not dead.exists() and other.exists()


# ----------------------------------------------------------------------------- real processes
def python_m_shared(*args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "shared", *map(str, args)], cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kwargs,
    )  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="needs a POSIX shell pipe")
def test_broken_pipe_and_ascii_terminal(checkpoint):
    reader = subprocess.Popen(["head", "-c", "20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc = python_m_shared(
        "generate", "--checkpoint", checkpoint, "--max-new-chars", 120,
        stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reader.stdin.close()
    assert len(reader.stdout.read()) == 20
    reader.wait()
    assert proc.returncode == 0 and proc.stderr == ""
    ascii_run = python_m_shared(
        "generate", "--checkpoint", checkpoint, "--prompt", "vivía", "--max-new-chars", 5,
        env={"PYTHONIOENCODING": "ascii"}, capture_output=True,
    )  # fmt: skip
    assert ascii_run.returncode == 0, ascii_run.stderr
    assert ascii_run.stdout.startswith(b"viv?a")
    assert b"PYTHONIOENCODING=utf-8" in ascii_run.stderr and b"Traceback" not in ascii_run.stderr


# ----------------------------------------------------------------------------- signals, memory
def ctrl_c_while_saving(path):
    os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
    Path(path).write_text("complete", encoding="utf-8")


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_during_a_save_waits_for_the_file(tmp_path):
    path = tmp_path / "gpt.pt"
    with pytest.raises(KeyboardInterrupt):  # a save inside the run: it stops after the save
        train_guards.save_safely(ctrl_c_while_saving, path)
    assert path.read_text(encoding="utf-8") == "complete"
    path.unlink()
    # the last save (after a first Ctrl-C): a second one must neither break it nor escape
    assert train_guards.save_safely(ctrl_c_while_saving, path, final=True) == path
    assert path.read_text(encoding="utf-8") == "complete"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_running_out_of_memory_is_one_line(checkpoint, capsys, monkeypatch, failure):
    import shared.generate

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(shared.generate, "generate", fail)
    code, _, err = run_cli(["generate", "--checkpoint", checkpoint], capsys)
    assert_one_error_line(code, err, "ran out of memory", "--batch-size")


def test_ctrl_c_before_the_command_starts_is_one_line(capsys, monkeypatch):
    import shared.course.cli as cli

    def interrupted_import(subparsers):
        raise KeyboardInterrupt  # Ctrl-C while torch is still importing

    monkeypatch.setattr(cli, "COMMANDS", [interrupted_import])
    assert main(["generate"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_run_keeps_the_model_when_the_sample_cannot_be_written(
    tmp_path, tiny_data, capsys, monkeypatch
):
    real_write = Path.write_text

    def disk_full(self, *args, **kwargs):
        if self.name == "sample.txt":
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    code, _, err = run_cli(
        ["run", "--checkpoint", tmp_path / "gpt.pt", "--outputs-dir", tmp_path / "out",
         "--time-budget", 1, "--max-new-chars", 10, "--no-gif", "--quiet"],
        capsys,
    )  # fmt: skip
    assert_one_error_line(code, err, "No space left", "safe at", "generate --checkpoint")
    assert (tmp_path / "gpt.pt").is_file()


def test_a_missing_package_names_the_python_to_use_not_a_bug(checkpoint, capsys, monkeypatch):
    import shared.generate

    def no_tqdm(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tqdm'", name="tqdm")

    monkeypatch.setattr(shared.generate, "generate", no_tqdm)
    code = main(["generate", "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'tqdm'" in err and "please report" not in err and "pip install -e ." in err


def test_suggested_commands_use_the_python_the_user_ran(tmp_path, monkeypatch):
    from shared.engine.errors import python_command

    venv_python = tmp_path / "course" / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.touch()
    monkeypatch.chdir(tmp_path / "course")
    monkeypatch.setattr(sys, "executable", str(venv_python))
    assert shared_command("train") == os.path.join(".venv", "bin", "python") + " -m shared train"
    elsewhere = tmp_path / "other" / "python3.11"
    monkeypatch.setattr(sys, "executable", str(elsewhere))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # `python` finds nothing: the full path
    assert python_command() == str(elsewhere)


def test_a_prompt_pasted_with_windows_line_ends_is_accepted(checkpoint, capsys):
    code = main(["generate", "--checkpoint", str(checkpoint), "--prompt", "En un lugar\r\nde la",
                 "--max-new-chars", "5", "--seed", "0"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("En un lugar\nde la") and "\r" not in out, err


def test_every_flag_of_the_issue_has_help_and_train_takes_url():
    from shared.course.cli import _subcommands, build_parser

    commands = _subcommands(build_parser())
    for command, flag in (("run", "--no-gif"), ("generate", "--top-k"), ("generate", "--top-p")):
        (action,) = [a for a in commands[command]._actions if flag in a.option_strings]
        assert action.help and len(action.help.split()) >= 4, (command, flag)
    args = build_parser().parse_args(["train", "--url", "https://example.org/book.txt"])
    assert args.url == "https://example.org/book.txt"
    grade_help = commands["grade"].format_help()
    assert "gradebook.cache.json" in grade_help and "OUT.cache.json" not in grade_help
