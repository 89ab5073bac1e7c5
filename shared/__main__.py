"""Command line: ``python -m shared <command> ...`` runs the course pipeline without Jupyter.

Commands are contributed by the component modules: each module listed in ``COMMAND_MODULES``
defines ``add_cli(subparsers)``, which adds its sub-command(s) with ``set_defaults(func=...)``;
``func(args)`` returns the exit code. Problems the user can fix raise ``CourseError`` and are
printed as a single ``error: ...`` line, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from shared.errors import CourseError

# In pipeline order; `python -m shared --help` lists the commands in this order.
COMMAND_MODULES = [
    "shared.data",  # data
    "shared.course.train_cli",  # train
    "shared.generate",  # generate
    "shared.viz",  # viz
    "shared.course.pipeline",  # run
    "shared.course.grade",  # check, grade
    "shared.course.lessons",  # lessons (authors)
]


class CourseArgumentParser(argparse.ArgumentParser):
    """Bad flags give one ``error: ...`` line (plus a pointer to --help), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CourseArgumentParser(
        prog="python -m shared",
        description="GPT from Scratch (Don Quijote): data, train, generate, viz, run, check, grade.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=CourseArgumentParser
    )
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a component not written yet
            if exc.name == module_name:
                continue
            raise
        module.add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
