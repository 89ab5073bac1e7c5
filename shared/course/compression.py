"""``python -m shared compress`` / ``decompress``: a text file <-> a .gptz file (``shared.gptzip``).

Paths are checked before the slow work; an existing output is never overwritten without
``--force``; what the user can fix is one ``CourseError`` line.
"""

from __future__ import annotations

import time
from pathlib import Path

from shared.course.paths import writable_file
from shared.engine.config import default_checkpoint_path
from shared.engine.errors import CourseError

SUFFIX = ".gptz"
BATCH = 64  # windows coded side by side (shared.gptzip.DEFAULT_BATCH)
ADAPT_LR = 1e-3  # --adapt: Adam's rate (best of 1e-4, 3e-4, 1e-3, 3e-3: benchmarks/RESULTS.md)
MATCH = (
    "decompress needs the same checkpoint file, the same torch version and a machine of the same "
    "kind (the thread count is recorded in the file and set again)"
)


def read_input(path: Path) -> bytes:
    if not path.is_file():
        raise CourseError(f"no file at {path}; give the path of a file to read")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CourseError(
            f"cannot read {path} ({exc.strerror or exc}); check its permissions"
        ) from None


def output_path(path: Path, flag: str, force: bool, source: Path) -> Path:
    """A writable output path that does not exist yet (or ``--force``), never the input."""
    path = writable_file(path, flag)
    if path.exists() and path.resolve() == source.resolve():
        raise CourseError(f"{flag} {path} is the input file; choose another {flag}")
    if path.exists() and not force:
        raise CourseError(
            f"{flag} {path} already exists; nothing was written: choose another {flag} "
            "or add --force to overwrite it"
        )
    return path


def write_output(path: Path, data: bytes, force: bool) -> None:
    try:
        with path.open("wb" if force else "xb") as handle:  # "x": never over a file made meanwhile
            handle.write(data)
    except FileExistsError:
        raise CourseError(
            f"{path} appeared while we worked; nothing was written: run again"
        ) from None


def progress_bar(desc: str, n_bytes: int, quiet: bool):
    """``(bar, update(tokens_done, tokens_total))``: a tqdm bar (plain lines off a terminal)
    counting bytes of text, with the speed in KB/s."""
    from shared.engine.progress import Progress

    bar = Progress(total=max(n_bytes, 1), desc=desc, unit="B", enabled=not quiet, every=10.0)
    start = time.perf_counter()

    def update(done: int, total: int) -> None:
        done_bytes = n_bytes * done / max(total, 1)
        speed = done_bytes / 1000 / max(time.perf_counter() - start, 1e-9)
        bar.update(done_bytes, **{"KB/s": f"{speed:.1f}"})

    return bar, update


def compress(args) -> int:
    import torch

    from shared.engine.checkpoint import load_checkpoint
    from shared.gptzip import compress_text

    raw = read_input(args.file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CourseError(
            f"{args.file} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}); "
            "compress works on text files: convert it to UTF-8 first"
        ) from None
    default = args.file.with_name(args.file.name + SUFFIX)
    out = output_path(args.out or default, "--out", args.force, args.file)
    checkpoint = Path(args.checkpoint or default_checkpoint_path()).expanduser().resolve()
    ckpt = load_checkpoint(checkpoint)
    torch.set_num_threads(args.num_threads)
    bar, update = progress_bar("compressing", len(raw), args.quiet)
    start = time.perf_counter()
    try:
        data = compress_text(
            ckpt.model, ckpt.tokenizer, text, batch=args.batch, checkpoint=str(checkpoint),
            adapt_lr=args.adapt_lr if args.adapt else None, progress=update,
        )  # fmt: skip
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    write_output(out, data, args.force)
    bits = 8 * len(data) / max(len(text), 1)
    print(
        f"{args.file}: {len(raw):,} bytes -> {out}: {len(data):,} bytes ({bits:.3f} bits/char), "
        f"{len(raw) / 1000 / max(seconds, 1e-9):.1f} KB/s"
    )
    return 0


def decompress(args) -> int:
    from shared.engine.checkpoint import load_checkpoint
    from shared.gptzip import decompress_bytes, read_header

    data = read_input(args.file)
    header, _ = read_header(data)
    name = args.file.name
    default = args.file.with_name(name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name + ".out")
    out = output_path(args.out or default, "--out", args.force, args.file)
    checkpoint = args.checkpoint or header.get("checkpoint")
    if not checkpoint:
        raise CourseError(f"{args.file} does not name its checkpoint; give it with --checkpoint")
    if args.checkpoint:
        ckpt = load_checkpoint(checkpoint)
    else:
        ckpt = the_model_it_was_coded_with(Path(checkpoint), header["fingerprint"], args.file)
    bar, update = progress_bar("decompressing", int(header.get("bytes") or 0), args.quiet)
    start = time.perf_counter()
    try:
        text = decompress_bytes(ckpt.model, ckpt.tokenizer, data, progress=update)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    raw = text.encode("utf-8")
    write_output(out, raw, args.force)
    print(
        f"{args.file} -> {out}: {len(raw):,} bytes, {len(raw) / 1000 / max(seconds, 1e-9):.1f} KB/s"
    )
    return 0


def the_model_it_was_coded_with(path: Path, fingerprint: str, file: Path):
    """The checkpoint the header names; if a later run replaced it there (``train`` keeps the
    earlier model under a dated name beside it), the kept copy whose weights match, said so."""
    from shared.engine.checkpoint import kept_versions, load_checkpoint
    from shared.gptzip import fingerprint as fingerprint_of

    named = load_checkpoint(path) if path.is_file() else None
    if named is not None and fingerprint_of(named.model, named.tokenizer) == fingerprint:
        return named
    for kept in kept_versions(path):
        ckpt = load_checkpoint(kept)
        if fingerprint_of(ckpt.model, ckpt.tokenizer) == fingerprint:
            print(f"{path.name} now holds another model; using {kept}, the one {file.name} was "
                  "compressed with (a later run kept it aside)")  # fmt: skip
            return ckpt
    if named is None:
        raise CourseError(
            f"{file} was compressed with the checkpoint {path}, which is not there any more; "
            "give its new place with --checkpoint"
        )
    return named  # decompress_bytes names the mismatch in one line
