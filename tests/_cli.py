"""`python -m shared ...` in-process, for the CLI tests: (exit code, stdout, stderr)."""

from __future__ import annotations

from shared.__main__ import main


def run_cli(argv, capsys):
    """In-process `python -m shared ...`: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors exit directly
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
