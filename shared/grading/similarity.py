"""Who copied from whom: ``similarity.md``, pairs of students with near-identical definitions.

Each exercise's graded code (the definition and the helpers the grader extracted with it,
``shared.grading.extract``; imports left out) is parsed and flattened into tokens with the
formatting gone: comments, whitespace, docstrings, annotations and the way a literal is
written (``1_000``, ``'a'``) are not in a Python AST, and every name the student chose
(variables, arguments, functions, attributes set on ``self``) becomes ``v0, v1...`` in order of
first use. Library names (``torch.softmax``, ``.view``) and builtins stay, so two honest
solutions that call different functions or loop differently still differ.

A pair is scored per exercise (difflib's ratio of the token sequences: 1.0 = identical after
normalising) and listed when a score reaches ``SIMILAR_AT``. What every student got from the
lesson's stub (a class's ``__init__``, a signature) is taken out of each version before
comparing; versions equal to the stub or to our solution are left out (everyone starts from
one, anyone can read the other), and so are versions with little code of the student's own
(a one-line definition looks the same in every notebook) and pairs whose two versions are
both close to our solution (where a lesson leads step by step, honest work converges).
A high score is a reason to read both versions, shown side by side, never proof.
"""

from __future__ import annotations

import ast
import builtins
import html
import itertools
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from shared.grading.extract import DEF_TYPES, extract, parse_python
from shared.grading.gradebook import Gradebook, write_atomic

SIMILAR_AT = 0.9
MIN_TOKENS = 40  # shorter definitions are too alike to tell anything
BUILTINS = frozenset(dir(builtins))


@dataclass
class Version:
    student: str
    tokens: tuple[str, ...]  # what the student wrote: the stub's tokens taken out
    code: str  # the graded code as the checker ran it (normalised formatting, no comments)


@dataclass
class Match:
    lesson: str
    exercise: str
    score: float
    a: Version
    b: Version
    near_solution: bool = False  # both are also close to our solution: not listed


def graded_code(cells: list, target: str) -> tuple[list[ast.stmt], str] | None:
    """The statements the grader runs for ``target`` (imports left out), and their text."""
    extraction = extract(cells, target)
    statements = []
    for _label, source in extraction.program:
        tree = parse_python(source)
        statements += [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    if not any(isinstance(s, DEF_TYPES) for s in statements):
        return None
    return statements, "\n\n".join(ast.unparse(s) for s in statements)


def _strip_docstring(node: ast.AST) -> list[ast.stmt]:
    body = list(getattr(node, "body", []))
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            return body[1:]
    return body


def tokens(statements: list[ast.stmt]) -> tuple[str, ...]:
    """The statements as a token sequence, with every student-chosen name canonical."""
    flat = _Flattener(statements)
    for stmt in statements:
        flat.visit(stmt)
    return tuple(flat.out)


class _Flattener:
    """Pre-order node types and values; names the code chose become ``v0, v1...``."""

    def __init__(self, statements: list[ast.stmt]):
        self.out: list[str] = []
        self.names: dict[str, str] = {}
        self.bound: set[str] = set()  # names the code binds (builtins it shadows included)
        self.attrs: set[str] = set()  # attributes it sets or defines (self.key, methods)
        self.keywords: set[int] = set()  # keyword arguments to its own functions
        defined = {n.name for s in statements for n in ast.walk(s) if isinstance(n, DEF_TYPES)}
        for node in (n for s in statements for n in ast.walk(s)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.bound.add(node.id)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
            elif isinstance(node, DEF_TYPES):
                self.bound.add(node.name)
                self.attrs.update(n.name for n in node.body if isinstance(n, DEF_TYPES))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                self.attrs.add(node.attr)
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in defined:
                    self.keywords.update(id(k) for k in node.keywords)

    def canon(self, name: str) -> str:
        if name in BUILTINS and name not in self.bound:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, (ast.expr_context, ast.Import, ast.ImportFrom)):
            return
        if isinstance(node, ast.AnnAssign):  # `x: int = 3` is `x = 3`; `x: int` is nothing
            if node.value is not None:
                self.out.append("Assign")
                self.visit(node.target)
                self.visit(node.value)
            return
        self.out.append(type(node).__name__)
        if isinstance(node, ast.Name):
            self.out.append(self.canon(node.id))
        elif isinstance(node, ast.arg):
            self.out.append(self.canon(node.arg))
            return  # its annotation is formatting, not code
        elif isinstance(node, DEF_TYPES):
            self.out.append(self.canon(node.name))
        elif isinstance(node, ast.Attribute):
            self.visit(node.value)
            self.out.append(self.canon(node.attr) if node.attr in self.attrs else node.attr)
            return
        elif isinstance(node, ast.keyword):
            own = id(node) in self.keywords and node.arg is not None
            self.out.append(self.canon(node.arg) if own else str(node.arg))
        elif isinstance(node, ast.Constant):
            self.out.append(repr(node.value))
        for field, value in ast.iter_fields(node):
            if field in ("returns", "type_comment"):
                continue
            if field == "body" and isinstance(node, DEF_TYPES):
                value = _strip_docstring(node)
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self.visit(child)


def score(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """difflib's ratio; below ``SIMILAR_AT`` it may be a cheaper upper bound of it."""
    if a == b:
        return 1.0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for bound in (matcher.real_quick_ratio, matcher.quick_ratio):
        if bound() < SIMILAR_AT:
            return bound()
    return matcher.ratio()


def reference_notebooks(root: Path | None = None) -> dict[str, dict[str, list]]:
    """Per lesson, the cells of our solution and of its stub (as ``lessons`` makes it)."""
    import nbformat

    from shared.course.lessons import has_exercise, stub_source

    root = root or Path(__file__).resolve().parent.parent.parent
    found = {}
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        try:
            cells = [dict(c) for c in nbformat.read(path, as_version=4).cells]
            stub = [
                {**c, "source": stub_source(c["source"])}
                if c.get("cell_type") == "code" and has_exercise(c.get("source", ""))
                else c
                for c in cells
            ]
        except Exception:  # a broken solution only costs the ignore list
            continue
        found[path.stem] = {"solution": cells, "stub": stub}
    return found


def own_tokens(seq: tuple[str, ...], stub: tuple[str, ...]) -> tuple[str, ...]:
    """``seq`` without what it shares with the lesson's stub (the scaffolding everyone got)."""
    if not stub:
        return seq
    matcher = SequenceMatcher(None, stub, seq, autojunk=False)
    kept = [seq[j1:j2] for op, _, _, j1, j2 in matcher.get_opcodes() if op != "equal"]
    return tuple(token for part in kept for token in part)


@dataclass
class Baseline:
    """One exercise's stub and solution, as tokens (empty when unknown)."""

    stub: tuple[str, ...] = ()
    solution: tuple[str, ...] = ()

    @classmethod
    def of(cls, cells_by_kind: dict, target: str) -> Baseline:
        found = {}
        for kind in ("stub", "solution"):
            code = graded_code(cells_by_kind.get(kind, []), target)
            found[kind] = tokens(code[0]) if code else ()
        return cls(**found)

    def own(self, seq: tuple[str, ...]) -> tuple[str, ...] | None:
        """What the student wrote; None when it is the stub, our solution, or too short."""
        if seq in (self.stub, self.solution):
            return None
        own = own_tokens(seq, self.stub)
        return own if len(own) >= MIN_TOKENS else None

    def near_solution(self, version: Version) -> bool:
        return bool(self.solution) and (
            score(version.tokens, own_tokens(self.solution, self.stub)) >= SIMILAR_AT
        )


def collect(book: Gradebook, registry: dict, references: dict) -> dict:
    """{(lesson, exercise): (baseline, [Version])} from every submitted notebook."""
    from shared.grading.selfcheck import read_notebook

    versions: dict = {}
    for lesson in book.lessons:
        exercises = registry.get(lesson, [])
        baselines = {
            ex.name: Baseline.of(references.get(lesson, {}), ex.target) for ex in exercises
        }
        for student in book.students:
            report = book.reports.get((student, lesson))
            if report is None or not report.path:
                continue
            try:
                cells = [dict(c) for c in read_notebook(Path(report.path)).cells]
            except (OSError, ValueError):
                continue
            for ex in exercises:
                try:
                    code = graded_code(cells, ex.target)
                    own = baselines[ex.name].own(tokens(code[0])) if code else None
                except (RecursionError, MemoryError, SyntaxError, ValueError):
                    continue  # code too deep or odd to compare: the grade already says why
                if own is not None:
                    found = versions.setdefault((lesson, ex.name), (baselines[ex.name], []))
                    found[1].append(Version(student, own, code[1]))
    return versions


def find_matches(versions: dict) -> list[Match]:
    """Every pair of versions of one exercise scoring ``SIMILAR_AT`` or more."""
    matches = []
    for (lesson, exercise), (baseline, found) in versions.items():
        for a, b in itertools.combinations(found, 2):
            value = score(a.tokens, b.tokens)
            if value >= SIMILAR_AT:
                near = baseline.near_solution(a) and baseline.near_solution(b)
                matches.append(Match(lesson, exercise, value, a, b, near))
    return matches


INTRO = (
    "Graded definitions compared after normalising names, whitespace, comments, docstrings and "
    "literal formatting (Python ASTs, not text). What the lesson's stub gave everyone is taken "
    "out; code equal to the stub or to our solution, and definitions with under {min} tokens of "
    "the student's own, are left out. A pair is listed when an exercise scores {at:.2f} or more "
    "(1.00 = identical after normalising), unless both versions also score that much against "
    "our solution (where the lesson leads everyone). A high score is a reason to read both "
    "versions, not proof."
)


def report(book: Gradebook, registry: dict, references: dict | None = None) -> str:
    references = reference_notebooks() if references is None else references
    versions = collect(book, registry, references)
    pairs: dict[tuple[str, str], list[Match]] = {}
    matches = find_matches(versions)
    for m in matches:
        if not m.near_solution:
            pairs.setdefault((m.a.student, m.b.student), []).append(m)
    compared = sum(len(found) for _, found in versions.values())
    lines = ["# Similarity report", "", INTRO.format(min=MIN_TOKENS, at=SIMILAR_AT), ""]
    lines += [f"{compared} versions of {len(versions)} exercise(s) compared."]
    near = sum(m.near_solution for m in matches)
    if near:
        lines.append(f"{near} more close pair(s) not listed: both versions close to our solution.")
    lines.append("")
    if not pairs:
        return "\n".join([*lines, "No pair of students has near-identical definitions."]) + "\n"
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), -max(m.score for m in kv[1])))
    lines += ["| student | student | exercises | highest score |", "| --- | --- | --- | --- |"]
    for (a, b), found in ranked:
        names = ", ".join(f"{m.lesson} {m.exercise}" for m in found)
        top = max(m.score for m in found)
        lines.append(f"| {_cell(a)} | {_cell(b)} | {names} | {top:.2f} |")
    for (a, b), found in ranked:
        lines += ["", f"## {_cell(a)} and {_cell(b)}", "", "| exercise | score |", "| --- | --- |"]
        lines += [f"| {where} | {value:.2f} |" for where, value in pair_scores(versions, a, b)]
        for m in sorted(found, key=lambda m: -m.score):
            lines += ["", f"### {m.lesson} {m.exercise}: {m.score:.2f}", "", *side_by_side(m)]
    return "\n".join(lines) + "\n"


def pair_scores(versions: dict, a: str, b: str) -> list[tuple[str, float]]:
    """The pair's exact score on every exercise both of them wrote code of their own for."""
    scores = []
    for (lesson, exercise), (_, found) in versions.items():
        mine = {v.student: v for v in found if v.student in (a, b)}
        if len(mine) == 2:
            matcher = SequenceMatcher(None, mine[a].tokens, mine[b].tokens, autojunk=False)
            scores.append((f"{lesson} {exercise}", matcher.ratio()))
    return scores


def _cell(text: str) -> str:
    return html.escape(text).replace("|", "&#124;")


def side_by_side(m: Match) -> list[str]:
    def column(v: Version) -> str:
        return f'<td valign="top"><pre>{html.escape(v.code, quote=False)}</pre></td>'

    return [
        f"<table><tr><th>{_cell(m.a.student)}</th><th>{_cell(m.b.student)}</th></tr>",
        f"<tr>{column(m.a)}{column(m.b)}</tr></table>",
    ]


def write_similarity(book: Gradebook, registry: dict, path: Path, references=None) -> None:
    text = report(book, registry, references)
    write_atomic(path, lambda handle: handle.write(text))
