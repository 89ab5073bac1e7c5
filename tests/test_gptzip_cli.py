"""Issue 32: ``python -m shared compress`` / ``decompress``: a real round trip through two
processes, and each mistake a user can make as one ``error:`` line that writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import TEXT

from shared.course.cli import main
from shared.data import CharTokenizer
from shared.engine.checkpoint import save_checkpoint
from shared.gptzip import read_header
from shared.modern import ModernConfig, ModernGPT

ROOT = Path(__file__).resolve().parent.parent


def save_tiny(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    tokenizer = CharTokenizer(TEXT)
    model = ModernGPT(
        ModernConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, vocab_size=len(tokenizer))
    )
    return save_checkpoint(path, model=model, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gptz")
    text = folder / "quijote.txt"
    text.write_bytes(("Ñ 😀\r\n" + TEXT[:600]).encode("utf-8"))
    return folder, save_tiny(folder / "gpt.pt", 0), text


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_then_decompress_in_two_processes_gives_the_same_bytes(files):
    folder, checkpoint, text = files
    packed, back = folder / "cli.gptz", folder / "back.txt"

    def shared(*argv):
        return subprocess.run(
            [sys.executable, "-m", "shared", *map(str, argv), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300,
        )  # fmt: skip

    done = shared("compress", text, "--checkpoint", checkpoint, "--out", packed, "--adapt")
    assert done.returncode == 0, done.stderr
    assert "bits/char" in done.stdout and "KB/s" in done.stdout
    done = shared("decompress", packed, "--out", back)  # no flags: the file names its checkpoint
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == text.read_bytes()


def test_an_existing_output_is_never_overwritten_silently(files, capsys):
    folder, checkpoint, text = files
    out = folder / "quijote.txt.gptz"  # its default decompressed name is taken too
    out.write_text("mine", encoding="utf-8")
    code, _, err = run_cli(["compress", text, "--checkpoint", checkpoint, "--out", out], capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_text(encoding="utf-8") == "mine"
    code, _, err = run_cli(
        ["compress", text, "--checkpoint", checkpoint, "--out", out, "--force", "--quiet"], capsys
    )
    assert code == 0 and out.read_bytes().startswith(b"GPTZ")
    code, _, err = run_cli(["decompress", out, "--quiet"], capsys)  # default: quijote.txt
    assert code == 2 and "already exists" in err
    code, _, err = run_cli(
        ["compress", text, "--checkpoint", checkpoint, "--out", text, "--force"], capsys
    )
    assert code == 2 and "is the input file" in err and text.read_bytes().startswith(b"\xc3\x91")


def test_non_utf8_input_is_one_line(files, capsys):
    folder, checkpoint, _ = files
    latin1 = folder / "latin1.txt"
    latin1.write_bytes("año".encode("latin-1"))
    code, _, err = run_cli(["compress", latin1, "--checkpoint", checkpoint], capsys)
    assert code == 2 and err.count("\n") == 1 and "not UTF-8" in err
    assert not (folder / "latin1.txt.gptz").exists()


def test_another_checkpoint_or_a_damaged_file_is_one_line(files, capsys):
    folder, checkpoint, text = files
    packed = folder / "for_errors.gptz"
    assert run_cli(["compress", text, "--checkpoint", checkpoint, "--out", packed, "--quiet"],
                   capsys)[0] == 0  # fmt: skip
    other = save_tiny(folder / "other.pt", 1)
    code, _, err = run_cli(["decompress", packed, "--checkpoint", other, "--out",
                            folder / "x.txt", "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "another model" in err and not (folder / "x.txt").exists()
    damaged = folder / "damaged.gptz"
    data = bytearray(packed.read_bytes())
    data[-5] ^= 0x01
    damaged.write_bytes(bytes(data))
    code, _, err = run_cli(["decompress", damaged, "--quiet"], capsys)
    assert code == 2 and "CRC32" in err and not (folder / "damaged").exists()
    code, _, err = run_cli(["decompress", text], capsys)
    assert code == 2 and "not a .gptz file" in err
    moved = folder / "moved.gptz"
    header, code = read_header(packed.read_bytes())
    meta = json.dumps({**header, "checkpoint": "/nowhere/gpt.pt"}).encode("utf-8")
    moved.write_bytes(b"GPTZ\x01" + len(meta).to_bytes(2, "big") + meta + code)
    code, _, err = run_cli(["decompress", moved, "--quiet"], capsys)
    assert code == 2 and "/nowhere/gpt.pt" in err and "--checkpoint" in err


def test_decompress_finds_the_model_a_later_run_kept_aside(tmp_path, capsys):
    from shared.engine.checkpoint import keep_aside

    checkpoint, text = save_tiny(tmp_path / "gpt.pt", 0), tmp_path / "t.txt"
    text.write_text(TEXT[:300], encoding="utf-8")
    assert run_cli(["compress", text, "--checkpoint", checkpoint, "--quiet"], capsys)[0] == 0
    kept = keep_aside(checkpoint)  # what a second `train` does before it saves its own model
    save_tiny(checkpoint, 1)  # another model now at the path the file names
    code, out, _ = run_cli(["decompress", tmp_path / "t.txt.gptz", "--out", tmp_path / "b.txt",
                            "--quiet"], capsys)  # fmt: skip
    assert code == 0 and f"using {kept}" in out
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == TEXT[:300]
    kept.unlink()  # no copy left: the mismatch is one line, nothing written
    code, _, err = run_cli(["decompress", tmp_path / "t.txt.gptz", "--out", tmp_path / "c.txt",
                            "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "compressed with another model" in err
    assert not (tmp_path / "c.txt").exists()
