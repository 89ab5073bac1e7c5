"""Every check test again, with the definition behind the grader's proxy (issue #23).

The grader runs each check in a judge process against a ``Remote`` proxy of the learner's
definition, which lives in the sandbox (``shared.grading.remote``). ``-p tests.gradefake`` runs
``tests/test_checks_*.py`` that way (the two ends in one process, over the same data-only
channel), so a check that gives a different verdict or hint through the grader fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_check_gives_the_same_verdict_and_hint_through_the_graders_proxy():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_checks_*.py"))
    assert len(files) >= 8  # one file per lesson's checks
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "tests.gradefake",
         "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
