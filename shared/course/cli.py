"""``python -m shared COMMAND``: every sub-command's flags in one place.

Each ``add_*`` function below declares one command's flags; the work is done by the matching
function in ``shared.course.commands`` (flags -> library calls -> a short report). Problems the
user can fix raise ``CourseError`` and print as one ``error: ...`` line, exit code 2, no
traceback. The ``check`` and ``grade`` commands are declared by ``shared.grading.grade``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

from shared.course import cli_types, commands, compression, streams
from shared.course.defaults import CPU_RECIPE, RECIPES
from shared.engine.errors import CourseError, one_line, python_command, shared_command

DEVICES = ["auto", "cpu", "cuda", "mps"]
SIZE_FLAGS = (
    ("batch-size", int, 4096), ("block-size", int, 4096), ("n-layer", int, 64),
    ("n-head", int, 64), ("n-embd", int, 4096), ("learning-rate", float, 1e3),
    ("warmup-iters", int, None), ("eval-interval", int, None), ("eval-iters", int, 10_000),
    ("num-threads", int, 1024),
)  # fmt: skip
# Below 0.01, logits / temperature overflow float32; top-p below 1e-6 rounds to 0 in float32.
TEMPERATURE = cli_types.number(float, 0.01, 100, low_inclusive=True)
TOP_P = cli_types.number(float, 1e-6, 1, low_inclusive=True)
FLAG_HELP = {"num-threads": "CPU threads (default: the fastest count, timed on the first steps)"}
# --layer, --head: the model knows its own range and says it; this only bounds the absurd
INDEX = cli_types.number(int, -(10**6), 10**6, low_inclusive=True)


class CourseArgumentParser(argparse.ArgumentParser):
    """Bad flags give one ``error: ...`` line (plus a pointer to --help), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        """An unknown flag names the closest valid one and points to its own command's help."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = _subcommands(self).get(getattr(parsed, "command", None), self)
            command.error(unknown_flags_message(unknown, command))
        return parsed


def add_data(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="download (or reuse) the corpus and print its statistics"
    )
    p.add_argument(
        "--url", help="where to download the book (default: $GPT_COURSE_DATA_URL or Gutenberg)"
    )
    p.add_argument("--data-dir", help="cache folder (default: $GPT_COURSE_DATA_DIR or data/)")
    p.add_argument(
        "--timeout",
        type=cli_types.positive(float, 3600),
        help="read timeout in seconds (default: 60)",
    )
    p.add_argument("--retries", type=cli_types.number(int, 0, 20, low_inclusive=True), default=3,
                   help="retries on 5xx/connection errors")  # fmt: skip
    p.set_defaults(func=commands.data)


def add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the GPT (the measured CPU recipe; on CUDA the larger GPU recipe)",
        description="Train the GPT. On several processes: "
        "torchrun --standalone --nproc_per_node N -m shared train [flags]",
    )
    p.add_argument("--data-dir", type=Path, help="folder with pg2000.txt (downloaded if missing)")
    p.add_argument(
        "--url", help="where to download the book (default: $GPT_COURSE_DATA_URL or Gutenberg)"
    )
    p.add_argument("--out", type=Path, help="checkpoint file (default: checkpoints/gpt.pt)")
    p.add_argument(
        "--time-budget", type=cli_types.time_budget, default=argparse.SUPPRESS,
        help="total seconds of wall clock (a resumed run counts its earlier time), or 'none'",
    )  # fmt: skip
    p.add_argument("--max-iters", type=cli_types.positive(int))
    p.add_argument("--resume", action="store_true",
                   help="continue the model in --out (its own recipe and tokenizer); without it, "
                   "a model already there is kept under a dated name, never replaced")  # fmt: skip
    p.add_argument("--device", choices=DEVICES, help="default: auto (cuda, then mps, then cpu)")
    # Upper bounds keep a typo (--batch-size 1000000000) from exhausting memory.
    for flag, kind, high in SIZE_FLAGS:
        p.add_argument(f"--{flag}", type=cli_types.positive(kind, high), help=FLAG_HELP.get(flag))
    for flag in ("min-lr", "weight-decay", "grad-clip"):
        p.add_argument(f"--{flag}", type=cli_types.number(float, 0, 1e3, low_inclusive=True))
    p.add_argument("--dropout", type=cli_types.number(float, 0, 1, low_inclusive=True))
    p.add_argument("--seed", type=cli_types.SEED)
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (slow start, faster steps; mostly worth it on a GPU)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tokenizer", choices=["char", "bpe"],
                   help="characters or byte-level BPE (lesson 09); default: bpe with the "
                   "modern recipe (the CPU default; characters in quick mode), char with the "
                   "classic one; --resume keeps the checkpoint's own")  # fmt: skip
    p.add_argument("--vocab-size", type=cli_types.number(int, 256, 65536, low_inclusive=True),
                   help="BPE vocabulary: 256 bytes + merges (default with bpe: 1024)")  # fmt: skip
    add_recipe(p)
    p.add_argument(
        "--muon-lr", type=cli_types.positive(float, 10), help="Muon's peak rate (modern)"
    )
    p.set_defaults(func=commands.train)


def add_generate(subparsers) -> None:
    p = subparsers.add_parser("generate", help="sample text from a trained checkpoint")
    p.add_argument("--checkpoint", type=Path, help="default: checkpoints/gpt.pt")
    p.add_argument("--prompt", type=cli_types.prompt, default="",
                   help="text to continue (default: a new paragraph)")  # fmt: skip
    p.add_argument(
        "--max-new-chars", type=cli_types.number(int, 0, 10**6, low_inclusive=True), default=500,
        help="characters to write (characters also with a BPE model)",
    )  # fmt: skip
    p.add_argument("--temperature", type=TEMPERATURE, default=0.8)
    p.add_argument("--top-k", type=cli_types.number(int, 1, low_inclusive=True),
                   help="sample only from the K most likely next characters (default: all of them)")  # fmt: skip
    p.add_argument("--top-p", type=TOP_P, help="sample only from the most likely characters "
                   "whose probabilities add up to P, e.g. 0.9 (default: all of them)")  # fmt: skip
    p.add_argument("--seed", type=cli_types.SEED, help="same seed, same text")
    p.add_argument("--no-cache", action="store_true", help="sample without the KV cache")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.set_defaults(func=commands.generate)


def add_viz(subparsers) -> None:
    from shared.course.defaults import GIF_NEW_CHARS as DEFAULT_NEW_CHARS
    from shared.course.defaults import GIF_PROMPT as DEFAULT_PROMPT

    p = subparsers.add_parser(
        "viz",
        help="animated GIF of what the model attends to while it writes",
        description="Generate text with a trained checkpoint and save an animated GIF: each frame "
        "shades the characters the prediction attended to (no display needed).",
    )
    p.add_argument("--checkpoint", help="checkpoint file (default: checkpoints/gpt.pt)")
    p.add_argument(
        "--prompt", type=cli_types.prompt, default=DEFAULT_PROMPT,
        help=f"text to start from (default: {DEFAULT_PROMPT!r})",
    )  # fmt: skip
    p.add_argument("--layer", type=INDEX, help="layer to show (default: the last)")
    p.add_argument("--head", type=INDEX, help="head to show (default: average of all heads)")
    p.add_argument("--max-new-chars", type=cli_types.positive(int, 2000), default=DEFAULT_NEW_CHARS,
                   help=f"characters to generate, one frame each (default: {DEFAULT_NEW_CHARS})")  # fmt: skip
    p.add_argument("--out", help="GIF to write (default: outputs/attention.gif)")
    p.add_argument("--png-dir", help="also write heatmap PNGs into this folder")
    p.add_argument("--seed", type=cli_types.SEED, default=0, help="sampling seed (default: 0)")
    p.add_argument("--temperature", type=TEMPERATURE, default=0.8,
                   help="sampling temperature (default: 0.8)")  # fmt: skip
    p.add_argument(
        "--fps",
        type=cli_types.number(float, 0.1, 100, low_inclusive=True),
        default=5.0,
        help="frames per second (default: 5)",
    )
    p.set_defaults(func=commands.viz)


def add_run(subparsers) -> None:
    from shared.course.pipeline import DEFAULT_PROMPT

    p = subparsers.add_parser("run", help="data -> train -> sample (+ attention GIF) in outputs/")
    p.add_argument(
        "--url", help="where to download the book (default: $GPT_COURSE_DATA_URL or Gutenberg)"
    )
    p.add_argument("--data-dir", type=Path, help="cache folder (default: $GPT_COURSE_DATA_DIR or data/)")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, help="default: checkpoints/gpt.pt")
    p.add_argument("--outputs-dir", type=Path, help="default: outputs/")
    p.add_argument(
        "--time-budget", type=cli_types.time_budget, default=argparse.SUPPRESS,
        help=f"training seconds, or 'none' (default: {CPU_RECIPE['time_budget']:g})",
    )  # fmt: skip
    p.add_argument("--max-iters", type=cli_types.positive(int),
                   help=f"training steps at most (default: {CPU_RECIPE['max_iters']})")  # fmt: skip
    p.add_argument("--num-threads", type=cli_types.positive(int, 1024),
                   help="CPU threads (default: the fastest count, measured on the first steps)")  # fmt: skip
    p.add_argument("--prompt", type=cli_types.prompt, default=DEFAULT_PROMPT,
                   help=f"text the sample continues (default: {DEFAULT_PROMPT!r})")  # fmt: skip
    p.add_argument(
        "--max-new-chars", type=cli_types.number(int, 1, 10**6, low_inclusive=True), default=1000,
        help="characters to sample",
    )  # fmt: skip
    p.add_argument("--seed", type=cli_types.SEED,
                   help="seed for training and sampling (default: 1337 for training, 0 for sampling)")  # fmt: skip
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--no-gif", action="store_true",
                   help="skip step 4, the attention GIF")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_recipe(p)
    p.set_defaults(func=commands.run)


def add_compress(subparsers) -> None:
    p = subparsers.add_parser(
        "compress", help="compress a text file with a trained checkpoint (arithmetic coding)",
        description="Compress a UTF-8 text file into FILE.gptz: the model's next-token "
        "probabilities drive an arithmetic coder. " + compression.MATCH + ".",
    )  # fmt: skip
    add_coding_files(p, "the text file (UTF-8)", "checkpoints/gpt.pt", "FILE.gptz")
    p.add_argument("--adapt", action="store_true",
                   help="the model keeps learning from the text it has coded (one Adam step per "
                   "window of each lane; the decoder makes the same steps)")  # fmt: skip
    p.add_argument("--adapt-lr", type=cli_types.positive(float, 1), default=compression.ADAPT_LR,
                   help="Adam's learning rate with --adapt")  # fmt: skip
    p.add_argument("--batch", type=cli_types.positive(int, 4096), default=compression.BATCH,
                   help="windows coded side by side (more: faster, a few bytes more)")  # fmt: skip
    p.add_argument("--num-threads", type=cli_types.positive(int, 1024), default=1,
                   help="CPU threads (recorded in the file; decompress uses the same)")  # fmt: skip
    p.set_defaults(func=compression.compress)


def add_decompress(subparsers) -> None:
    p = subparsers.add_parser(
        "decompress", help="give back the exact text of a .gptz file",
        description="Decompress FILE.gptz made by `python -m shared compress`; the file names "
        "its checkpoint and settings. " + compression.MATCH + ".",
    )  # fmt: skip
    add_coding_files(p, "the .gptz file", "the one the file names", "FILE without .gptz")
    p.set_defaults(func=compression.decompress)


def add_coding_files(p, what: str, checkpoint: str, out: str) -> None:
    """The flags compress and decompress share: the input, the model, the output."""
    p.add_argument("file", type=Path, help=what)
    p.add_argument("--checkpoint", type=Path, help=f"default: {checkpoint}")
    p.add_argument("--out", type=Path, help=f"default: {out}")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_recipe(p) -> None:
    p.add_argument(
        "--recipe", choices=RECIPES,
        help="modern: lesson 10's ModernGPT (RMSNorm, RoPE, ReLU², QK-norm) with Muon + AdamW, "
        "the default on the CPU; classic: lessons 03-08's GPT with AdamW, the default on a GPU",
    )  # fmt: skip


def add_lessons(subparsers) -> None:
    p = subparsers.add_parser(
        "lessons", help="regenerate lessons/ from solutions/ (for course authors)"
    )
    p.add_argument("--check", action="store_true", help="only report lessons that are out of date")
    p.set_defaults(func=commands.lessons)


def add_grading(subparsers) -> None:
    from shared.grading.grade import add_cli

    add_cli(subparsers)  # check, grade


# In pipeline order; `python -m shared --help` lists the commands in this order.
COMMANDS = [
    add_data, add_train, add_generate, add_viz, add_run, add_compress, add_decompress,
    add_grading, add_lessons,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = CourseArgumentParser(
        prog=shared_command(),
        description="GPT from Scratch (Don Quijote): data, train, generate, viz, run, compress, "
        "decompress, check, grade.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=CourseArgumentParser
    )
    for add in COMMANDS:
        add(subparsers)
    for name, command in _subcommands(parser).items():
        show_defaults(command, CPU_RECIPE if name == "train" else {})
    return parser


def show_defaults(parser: argparse.ArgumentParser, recipe: dict) -> None:
    """Every flag's help says its default (``recipe``: defaults that come from the recipe)."""
    for action in parser._actions:
        help_text = action.help or ""
        if not action.option_strings or action.help == argparse.SUPPRESS or "default" in help_text:
            continue
        if action.dest in recipe:
            shown = f"default: {recipe[action.dest]:g} in the CPU recipe"
        elif action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
            continue
        else:
            shown = f"default: {action.default}"
        action.help = f"{help_text} ({shown})" if help_text else shown


def unknown_flags_message(unknown: list[str], parser: argparse.ArgumentParser) -> str:
    """``unrecognized arguments: --time-bugdet; did you mean --time-budget?``"""
    flags = [opt for a in parser._actions for opt in a.option_strings if opt.startswith("--")]
    message = f"unrecognized arguments: {' '.join(unknown)}"
    for word in unknown:
        names = {flag.lstrip("-"): flag for flag in flags}
        close = difflib.get_close_matches(word.split("=")[0].lstrip("-"), names, n=1, cutoff=0.6)
        if word.startswith("-") and close:
            return f"{message}; did you mean {names[close[0]]}?"
    return message


def flag_names(message: str, parser: argparse.ArgumentParser | None) -> str:
    """Library errors name arguments in backticks (`learning_rate`); here they are flags
    (--learning-rate). Backticked words that are no flag of any command stay as they are."""
    if parser is None:
        return message
    commands = _subcommands(parser).values()
    flags = {opt for sub in commands for a in sub._actions for opt in a.option_strings}

    def as_flag(match: re.Match) -> str:
        flag = "--" + match[1].replace("_", "-")
        return flag if flag in flags else match[0]

    return re.sub(r"`(\w+)`", as_flag, message)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub for action in actions for name, sub in action.choices.items()}


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one ``error: ...`` line and a non-zero exit code."""
    command, parser = "(parsing the flags)", None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, or a bad flag (one `error:` line already printed)
            return exc.code if isinstance(exc.code, int) else 2
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        command = args.command
        streams.replace_unencodable()  # PYTHONIOENCODING=ascii: '?' for 'ñ', not a crash
        return int(args.func(args) or 0)
    except CourseError as exc:
        print(f"error: {flag_names(str(exc), parser)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # also while torch imports, before any command started
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `generate | head -c 20`: the reader has all it wanted
        streams.silence_stdout()
        return 0
    except Exception as exc:  # the net: a case nobody thought of is still one line
        if missing_package(exc):
            print(f"error: {missing_package(exc)}", file=sys.stderr)
            return 2
        if streams.out_of_memory(exc):
            print(
                f"error: `{shared_command(command)}` ran out of memory; use smaller sizes "
                "(--batch-size, --block-size, --n-embd, --n-layer) or fewer --max-new-chars",
                file=sys.stderr,
            )
            return 2
        log = streams.write_traceback_log(command, exc, argv)
        print(
            f"error: unexpected failure in `{shared_command(command)}` "
            f"({type(exc).__name__}: {one_line(exc, 160)}); the full traceback is in {log}; "
            "please report it",
            file=sys.stderr,
        )
        return 1


def missing_package(exc: BaseException) -> str | None:
    """The line for a package this Python lacks (a setup slip, not a bug): which Python to use,
    or what to install; None for any other error."""
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if not name or name.split(".")[0] == "shared":
        return None
    return (
        f"this Python ({python_command()}) has no {name.split('.')[0]!r} package, which the "
        "course needs: run the command with the Python of the course's setup (the README's "
        "`.venv/bin/python -m shared ...`), or install the course into this one: "
        f"`{python_command()} -m pip install -e .`"
    )
