"""`python -m shared train | generate | run`: they work, and every bad input is one `error:` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _cli import run_cli
from _tiny import tiny_config, tiny_corpus

import shared.data
from shared.train import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "gpt.pt"
    train(tiny_corpus(), tiny_config(max_iters=5), out=path, progress=False)
    return path


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())


def assert_one_error_line(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_generate_prints_prompt_and_continuation_and_seed_repeats(checkpoint, capsys):
    args = ["generate", "--checkpoint", checkpoint, "--prompt", "En un", "--seed", 3,
            "--max-new-chars", 40]  # fmt: skip
    code, first, _ = run_cli(args, capsys)
    assert code == 0 and first.startswith("En un") and len(first.rstrip("\n")) >= 45
    assert run_cli(args, capsys)[1] == first
    assert run_cli([*args[:-4], "--seed", 4, "--max-new-chars", 40], capsys)[1] != first
    code, no_cache, _ = run_cli([*args, "--no-cache", "--top-k", 5, "--top-p", 0.9], capsys)
    assert code == 0 and no_cache.startswith("En un")


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--prompt", "En un Ω"], ["'Ω'"]),
        (["--temperature", "0"], ["--temperature", ">= 0.01"]),
        (["--temperature", "-1"], ["--temperature"]),
        (["--temperature", "hot"], ["--temperature"]),
        (["--top-k", "0"], ["--top-k"]),
        (["--top-p", "1.5"], ["--top-p"]),
        (["--top-p", "0"], ["--top-p"]),
        (["--max-new-chars", "-3"], ["--max-new-chars"]),
    ],
)
def test_generate_bad_values_are_one_error_line(checkpoint, capsys, extra, fragments):
    code, out, err = run_cli(["generate", "--checkpoint", checkpoint, *extra], capsys)
    assert_one_error_line(code, err, *fragments)
    assert out == ""


def test_missing_and_garbage_checkpoints_are_one_error_line(tmp_path, capsys):
    code, _, err = run_cli(["generate", "--checkpoint", tmp_path / "none.pt"], capsys)
    assert_one_error_line(code, err, "no checkpoint", "python -m shared train")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"PK\x03\x04 definitely not a checkpoint" * 50)
    code, _, err = run_cli(["generate", "--checkpoint", garbage], capsys)
    assert_one_error_line(code, err, "not a readable checkpoint")


def test_train_cli_trains_resumes_and_refuses_a_mismatch(tmp_path, tiny_data, capsys):
    out = tmp_path / "gpt.pt"
    base = ["train", "--out", out, "--quiet", "--block-size", 16, "--batch-size", 4,
            "--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--eval-iters", 2, "--time-budget", "none"]  # fmt: skip
    code, stdout, _ = run_cli([*base, "--max-iters", 4], capsys)
    assert code == 0 and "step 4" in stdout and out.is_file()
    code, stdout, _ = run_cli([*base, "--max-iters", 6, "--resume"], capsys)
    assert code == 0 and "step 6" in stdout
    code, _, err = run_cli([*base[:-2], "--max-iters", 8, "--resume", "--n-embd", 32], capsys)
    assert_one_error_line(code, err, "cannot resume", "n_embd")


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--max-iters", "0"], ["--max-iters"]),
        (["--time-budget", "-5"], ["--time-budget"]),
        (["--learning-rate", "abc"], ["--learning-rate"]),
        (["--dropout", "1.5"], ["dropout"]),
        (["--n-embd", "30", "--n-head", "4"], ["divisible"]),
        (["--device", "tpu"], ["--device"]),
    ],
)
def test_train_bad_values_are_one_error_line(tmp_path, tiny_data, capsys, extra, fragments):
    code, _, err = run_cli(["train", "--out", tmp_path / "x.pt", *extra], capsys)
    assert_one_error_line(code, err, *fragments)


def test_run_writes_a_sample(tmp_path, tiny_data, capsys):
    code, stdout, _ = run_cli(
        ["run", "--checkpoint", tmp_path / "gpt.pt", "--outputs-dir", tmp_path / "out",
         "--time-budget", 2, "--max-new-chars", 60, "--no-gif", "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    sample = (tmp_path / "out" / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("En un lugar de la Mancha") and len(sample) > 60
    assert "sample.txt" in stdout and (tmp_path / "gpt.pt").is_file()


def test_run_checks_the_prompt_before_training(tmp_path, tiny_data, capsys):
    code, _, err = run_cli(["run", "--prompt", "¿Qué tal? ✓", "--outputs-dir", tmp_path], capsys)
    assert_one_error_line(code, err, "'✓'")
    assert not list(tmp_path.iterdir())


def test_a_real_process_prints_no_traceback(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("hola", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "shared", "generate", "--checkpoint", str(garbage)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_run_hands_the_checkpoint_to_the_gif_step(tmp_path, tiny_data, capsys, monkeypatch):
    import shared.course.gif

    calls = []

    def fake_gif(checkpoint, out, prompt, progress, num_threads):
        calls.append((Path(checkpoint), Path(out), prompt))
        Path(out).write_bytes(b"GIF89a")
        return Path(out)

    monkeypatch.setattr(shared.course.gif, "make_attention_gif", fake_gif)
    code, stdout, _ = run_cli(
        ["run", "--checkpoint", tmp_path / "gpt.pt", "--outputs-dir", tmp_path / "out",
         "--time-budget", 1, "--max-new-chars", 20, "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "4/4 gif" in stdout
    assert calls == [
        (tmp_path / "gpt.pt", tmp_path / "out" / "attention.gif", "En un lugar de la Mancha, ")
    ]
