"""Checkpoint files: round trip, weights_only loading, atomic writes, clear errors."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
from _tiny import tiny_config, tiny_corpus

from shared.engine.checkpoint import (
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    strip_compile_prefix,
)
from shared.engine.errors import CourseError
from shared.lesson_tools.lesson_checkpoint import ensure_checkpoint
from shared.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "gpt.pt"
    result = train(tiny_corpus(), tiny_config(max_iters=6), out=out, progress=False)
    return result, out


def test_round_trip_gives_the_same_model_and_everything_to_resume(trained):
    result, path = trained
    raw = torch.load(path, weights_only=True)  # plain types only: no pickled code
    assert raw["step"] == 6 and raw["vocab"] == result.tokenizer.chars
    assert raw["optimizer"]["state"] and raw["train_config"]["max_iters"] == 6
    ckpt = load_checkpoint(path)
    assert not ckpt.model.training
    assert ckpt.tokenizer.chars == result.tokenizer.chars
    assert ckpt.model_config == result.model.config
    assert ckpt.step == 6 and ckpt.history["step"] == result.history["step"]
    idx = torch.tensor([result.tokenizer.encode("En un lugar")])
    assert torch.equal(ckpt.model(idx)[0], result.model(idx)[0])


def test_writes_are_atomic_and_leave_no_temporary_files(trained, tmp_path):
    result, _ = trained
    path = tmp_path / "sub" / "gpt.pt"
    save_checkpoint(path, model=result.model, tokenizer=result.tokenizer, step=1)
    save_checkpoint(path, model=result.model, tokenizer=result.tokenizer, step=2)
    assert os.listdir(path.parent) == ["gpt.pt"]
    assert read_checkpoint(path)["step"] == 2


def test_failed_write_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    result, _ = trained
    path = tmp_path / "gpt.pt"
    save_checkpoint(path, model=result.model, tokenizer=result.tokenizer, step=1)

    def broken_save(obj, handle):
        handle.write(b"half a file")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model=result.model, tokenizer=result.tokenizer, step=2)
    monkeypatch.undo()
    assert read_checkpoint(path)["step"] == 1 and os.listdir(tmp_path) == ["gpt.pt"]


def test_torch_compile_prefix_is_stripped(trained, tmp_path):
    _, path = trained
    raw = torch.load(path, weights_only=True)
    raw["model"] = {f"_orig_mod.{k}": v for k, v in raw["model"].items()}
    torch.save(raw, tmp_path / "compiled.pt")
    assert load_checkpoint(tmp_path / "compiled.pt").step == 6
    assert strip_compile_prefix({"_orig_mod.a": 1, "b": 2}) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable checkpoint"),
        (b"\x80" + os.urandom(2000), "not a readable checkpoint"),
        (b"PK\x03\x04" + os.urandom(2000), "not a readable checkpoint"),
        ("truncated", "not a readable checkpoint"),
        ("not a dict", "not a checkpoint made by this course"),
        ("wrong shapes", "is damaged: its model does not load.*size mismatch"),
    ],
)
def test_bad_files_give_one_clear_error(trained, tmp_path, content, message):
    _, good = trained
    bad = tmp_path / "bad.pt"
    if content == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif content == "not a dict":
        torch.save([1, 2, 3], bad)
    elif content == "wrong shapes":
        raw = torch.load(good, weights_only=True)
        raw["model_config"]["n_embd"] = 32
        torch.save(raw, bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(CourseError, match=message) as info:
        load_checkpoint(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", ["hola, esto es un texto\n", "\x89PNG..."])
def test_someone_elses_file_is_not_called_damaged_nor_to_be_deleted(tmp_path, content):
    other = tmp_path / "notes.txt"
    other.write_text(content, encoding="utf-8")
    with pytest.raises(CourseError, match="is not a checkpoint") as info:
        load_checkpoint(other)
    assert "delete" not in str(info.value) and "damaged" not in str(info.value)
    assert other.read_text(encoding="utf-8") == content


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CourseError, match="python -m shared train"):
        load_checkpoint(tmp_path / "nope.pt")


def test_resume_refuses_a_different_vocab_or_model(trained, tmp_path):
    _, path = trained
    other = tmp_path / "gpt.pt"
    other.write_bytes(path.read_bytes())
    with pytest.raises(CourseError, match="different vocabulary"):
        train(tiny_corpus("abc " * 200), tiny_config(), out=other, resume=True, progress=False)
    with pytest.raises(CourseError, match="n_embd 16 vs 32"):
        train(tiny_corpus(), tiny_config(n_embd=32), out=other, resume=True, progress=False)


def test_ensure_checkpoint_uses_an_existing_one_or_trains_a_small_one(
    trained, tmp_path, monkeypatch, capsys
):
    _, path = trained
    assert ensure_checkpoint(path) == path
    with pytest.raises(CourseError, match="lesson 06_train"):
        ensure_checkpoint(tmp_path / "missing.pt", quick_train_if_missing=False)

    import shared.lesson_tools.lesson_checkpoint as lesson_checkpoint

    monkeypatch.setattr(lesson_checkpoint, "load_corpus", lambda *a, **k: tiny_corpus())
    monkeypatch.setattr(
        lesson_checkpoint, "default_train_config", lambda **k: replace(tiny_config(), **k)
    )
    made = ensure_checkpoint(tmp_path / "small.pt")
    assert made == tmp_path / "small.pt" and load_checkpoint(made).step > 0
    assert "Training a small" in capsys.readouterr().out


# ----------------------------------------------------------------------------- never lose a model
def _stamp(path) -> str:
    import time

    return time.strftime("%Y-%m-%d-%H%M", time.localtime(path.stat().st_mtime))


def test_keep_aside_moves_to_a_dated_name_and_never_overwrites(tmp_path):
    from shared.engine.checkpoint import keep_aside, kept_versions

    path = tmp_path / "gpt.pt"
    assert keep_aside(path) is None  # nothing there: nothing to do
    path.write_bytes(b"first")
    stamp = _stamp(path)
    taken = tmp_path / f"gpt.{stamp}.pt"
    taken.write_bytes(b"an older copy with the same minute")
    kept = keep_aside(path)
    assert kept == tmp_path / f"gpt.{stamp}-2.pt" and kept.read_bytes() == b"first"
    assert not path.exists() and taken.read_bytes() == b"an older copy with the same minute"
    assert set(kept_versions(path)) == {taken, kept}


def test_a_new_run_keeps_the_earlier_model_and_resume_continues_it(tmp_path, capsys):
    out = tmp_path / "gpt.pt"
    train(tiny_corpus(), tiny_config(max_iters=4), out=out, progress=False)
    first = out.read_bytes()
    capsys.readouterr()
    train(tiny_corpus(), tiny_config(max_iters=3), out=out, progress=False)
    said = capsys.readouterr().out
    kept = sorted(tmp_path.glob("gpt.*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == first  # the 4-step model, intact
    assert f"kept it as {kept[0]}" in said and "step 4" in said
    assert read_checkpoint(out)["step"] == 3
    train(tiny_corpus(), tiny_config(max_iters=5), out=out, resume=True, progress=False)
    assert len(list(tmp_path.glob("gpt.*.pt"))) == 1  # resuming replaces nothing
    assert read_checkpoint(out)["step"] == 5


def test_a_folder_or_a_missing_file_says_what_it_is_and_names_kept_models(tmp_path):
    with pytest.raises(CourseError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)
    kept = tmp_path / "gpt.2026-01-02-0304.pt"
    kept.write_bytes(b"PK\x03\x04")
    with pytest.raises(CourseError, match="earlier models kept next to it: gpt.2026-01-02-0304.pt"):
        read_checkpoint(tmp_path / "gpt.pt")


def test_no_checkpoint_error_advises_deleting_a_model(trained, tmp_path):
    from shared.engine.train_guards import check_resumable

    _, path = trained
    broken = tmp_path / "gpt.pt"
    broken.write_bytes(path.read_bytes()[:200])
    messages = []
    for attempt in (
        lambda: read_checkpoint(broken),
        lambda: check_resumable(
            read_checkpoint(path), path, tiny_corpus("abc " * 50).tokenizer, None
        ),
        lambda: train(tiny_corpus(), tiny_config(n_embd=32), out=path, resume=True),
    ):
        with pytest.raises(CourseError) as caught:
            attempt()
        messages.append(str(caught.value))
    for message in messages:
        assert not any(word in message for word in ("delete", "drop `resume`", "remove it"))
    assert "new file name" in messages[1] and "new file name" in messages[2]


def test_lessons_open_the_kept_lesson_gpt_when_gpt_pt_holds_a_modern_one(trained, tmp_path, capsys):
    from shared.modern import ModernConfig, ModernGPT

    _, path = trained
    wanted = tmp_path / "gpt.pt"
    kept = tmp_path / "gpt.2026-01-02-0304.pt"
    kept.write_bytes(path.read_bytes())  # lesson 06's GPT, kept aside by a later run
    ckpt = load_checkpoint(path)
    modern = ModernGPT(ModernConfig(vocab_size=ckpt.tokenizer.vocab_size, block_size=16,
                                    n_layer=1, n_head=2, n_embd=16))  # fmt: skip
    save_checkpoint(wanted, model=modern, tokenizer=ckpt.tokenizer)
    assert ensure_checkpoint(wanted, quick_train_if_missing=False) == kept
    assert f"uses {kept.name}, kept from an earlier run" in capsys.readouterr().out


def test_the_test_suite_never_uses_the_learners_folders():
    from shared.engine.config import default_checkpoint_path, default_outputs_dir, project_root
    from shared.lesson_tools.lesson_checkpoint import quick_checkpoint_path

    root = project_root()
    for path in (default_checkpoint_path(), quick_checkpoint_path(), default_outputs_dir()):
        assert not path.resolve().is_relative_to(root), path  # conftest points them elsewhere
