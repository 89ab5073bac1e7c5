"""Nothing unfinished where a learner reads: lessons, solutions, the README, shared/'s docstrings.

Authoring leftovers (a placeholder owner in a link, TODO/FIXME, "to be written", a placeholder
marker) and answer blocks whose brackets do not close are release blockers: each one is a
sentence a learner trips over. The test names the file, the place and the leftover.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LEFTOVERS = re.compile(
    r"\bOWNER\b|\bTODO\b|\bFIXME\b|\bXXX\b|\bTBD\b|PLACEHOLDER|to be (?:written|filled|done)"
    r"|lorem ipsum|\?\?\?",
    re.IGNORECASE,
)
CASE_SENSITIVE = {"owner", "todo", "tbd", "placeholder"}  # words in lower case ("todo": all)
ANSWER_BLOCK = re.compile(r"<details><summary>Answer[^<]*</summary>(?P<body>.*?)</details>", re.S)
CODE_OR_MATH = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.S)
PAIRS = {")": "(", "]": "[", "}": "{"}


def leftovers(text: str) -> list[str]:
    found = []
    for match in LEFTOVERS.finditer(text):
        word = match.group(0)
        if word.lower() in CASE_SENSITIVE and not word.isupper():
            continue
        found.append(word)
    return found


def unbalanced(text: str) -> str | None:
    """The first bracket that does not close (or closes nothing), ignoring code and maths."""
    stack: list[str] = []
    for char in CODE_OR_MATH.sub("", text):
        if char in "([{":
            stack.append(char)
        elif char in PAIRS:
            if not stack or stack.pop() != PAIRS[char]:
                return f"a {char!r} that closes nothing"
    return f"a {stack[-1]!r} never closed" if stack else None


def learner_texts():
    """(where, text, is_markdown) for every text a learner reads."""
    for folder in ("lessons", "solutions"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            for index, cell in enumerate(cells):
                source = "".join(cell["source"])
                yield f"{folder}/{path.name} cell {index}", source, cell["cell_type"] == "markdown"
    yield "README.md", (ROOT / "README.md").read_text(encoding="utf-8"), True
    for path in sorted((ROOT / "shared").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    name = getattr(node, "name", "module")
                    yield f"{path.relative_to(ROOT)} docstring of {name}", doc, False


def test_no_authoring_leftovers_where_a_learner_reads():
    problems = [
        f"{where}: {found}" for where, text, _ in learner_texts() if (found := leftovers(text))
    ]
    assert not problems, "authoring leftovers:\n" + "\n".join(problems)


def test_every_answer_block_closes_its_brackets():
    problems = []
    for where, text, is_markdown in learner_texts():
        if not is_markdown:
            continue
        for block in ANSWER_BLOCK.finditer(text):
            if (problem := unbalanced(block.group("body"))) is not None:
                problems.append(f"{where}: {problem} in {block.group('body').strip()[:60]!r}...")
    assert not problems, "unbalanced answer blocks:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "text, found",
    [
        ("see github.com/OWNER/course", ["OWNER"]),
        ("(**No.** the answer: to be written after the full run)", ["to be written"]),
        ("# TODO: explain", ["TODO"]),
        ("FIXME later", ["FIXME"]),
        ("PLACEHOLDER: fill in", ["PLACEHOLDER"]),
        ("todo el mundo; the owner of the book", []),  # ordinary words
        ("Sancho", []),
    ],
)
def test_the_leftover_finder(text, found):
    assert leftovers(text) == found


@pytest.mark.parametrize(
    "text, ok",
    [
        ("(**No.** it learned (mostly) nothing.", False),
        ("**No.** it learned (mostly) nothing.", True),
        ("a list [0, 2] and `x[:, -1` in code, and $[0, 1)$ in maths", True),
        ("closes nothing)", False),
        ("([)]", False),
    ],
)
def test_the_bracket_checker(text, ok):
    assert (unbalanced(text) is None) == ok
