"""Generate ``lessons/`` from ``solutions/``: the solutions are the single source.

An exercise is a region of a code cell between nbgrader's markers::

    def encode(text, stoi):
        ### BEGIN SOLUTION
        # HINT: look each character up in stoi.
        return [stoi[ch] for ch in text]
        ### END SOLUTION

In the lesson the region becomes a stub at the same indentation; ``# HINT:`` comment lines
inside the region are kept, so the learner sees them::

    def encode(text, stoi):
        # HINT: look each character up in stoi.
        # YOUR CODE HERE
        raise NotImplementedError("not implemented yet: replace this line with your code")

Regions always sit inside a function or method body (never at top level), so an unsolved
exercise fails in its check cell with "not implemented yet", not with a NameError.
All outputs and execution counts are stripped.

``python -m shared lessons`` regenerates ``lessons/``; ``--check`` only reports drift.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING

from shared.engine.errors import CourseError

if TYPE_CHECKING:  # nbformat takes seconds to import; the CLI loads this module on every call
    import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT_PREFIX = "# HINT:"
STUB_MESSAGE = "not implemented yet: replace this line with your code"

_BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\s*$")
_END_RE = re.compile(r"^[ \t]*### END SOLUTION\s*$")


def stub_source(source: str, where: str = "cell") -> str:
    """Replace every solution region in ``source`` with a stub; raise on malformed markers."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.splitlines(), start=1):
        if region is None:
            match = _BEGIN_RE.match(line)
            if match:
                indent = match.group("indent")
                if not indent:
                    raise CourseError(
                        f"{where}, line {number}: `{BEGIN}` must be indented inside a function or "
                        "method body, so an unsolved exercise fails in its check cell"
                    )
                region = []
            elif _END_RE.match(line):
                raise CourseError(f"{where}, line {number}: `{END}` without a `{BEGIN}` before it")
            else:
                out.append(line)
        elif _END_RE.match(line):
            out.extend(indent + h.strip() for h in region if h.strip().startswith(HINT_PREFIX))
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{STUB_MESSAGE}")')
            region = None
        elif _BEGIN_RE.match(line):
            raise CourseError(f"{where}, line {number}: nested `{BEGIN}`")
        else:
            region.append(line)
    if region is not None:
        raise CourseError(f"{where}: `{BEGIN}` is never closed by `{END}`")
    return "\n".join(out)


def has_exercise(source: str) -> bool:
    return any(_BEGIN_RE.match(line) for line in source.splitlines())


def make_lesson(
    solution: nbformat.NotebookNode, name: str = "notebook", repo_url: str | None = None
) -> nbformat.NotebookNode:
    """Return the lesson version of a solution notebook (a new object; the input is untouched).
    With ``repo_url`` (the published repository) it opens with the Colab badge and setup cell."""
    lesson = copy.deepcopy(solution)
    for index, cell in enumerate(lesson.cells):
        if cell.cell_type == "code":
            if has_exercise(cell.source):
                cell.source = stub_source(cell.source, where=f"{name} cell {index}")
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # run timestamps: would churn the lesson on every run
        if BEGIN in cell.source or END in cell.source:
            raise CourseError(f"{name} cell {index}: solution markers outside a code cell region")
    lesson.metadata.pop("widgets", None)
    if repo_url:
        add_colab_header(lesson, f"lessons/{name}", repo_url)
    return lesson


def add_colab_header(lesson: nbformat.NotebookNode, notebook: str, repo_url: str) -> None:
    """An "Open in Colab" badge above the title, and the Colab setup cell right after it
    (it installs the course in Colab and does nothing anywhere else)."""
    import nbformat

    from shared.course.colab import badge_markdown, setup_cell

    title = next((c for c in lesson.cells if c.cell_type == "markdown"), None)
    at = 0
    if title is not None:
        title.source = f"{badge_markdown(notebook, repo_url)}\n\n{title.source}"
        at = lesson.cells.index(title) + 1
    setup = nbformat.v4.new_code_cell(setup_cell(repo_url).rstrip("\n"), id="colab-setup")
    lesson.cells.insert(at, setup)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The exact text we write for a notebook (stable, so the sync test can compare files)."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def generate_all(root: Path, check_only: bool = False) -> list[str]:
    """Regenerate ``root/lessons`` from ``root/solutions``; return the names that changed."""
    solutions = sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if not solutions:
        raise CourseError(f"no solution notebooks found in {root / 'solutions'}")
    import nbformat

    from shared.course.colab import repository_url

    repo_url = repository_url(root)  # None until the course is published: no Colab header
    changed = []
    for path in solutions:
        solution = nbformat.read(path, as_version=4)
        text = notebook_text(make_lesson(solution, name=path.name, repo_url=repo_url))
        target = root / "lessons" / path.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            changed.append(path.name)
            if not check_only:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", newline="\n")
    return changed
