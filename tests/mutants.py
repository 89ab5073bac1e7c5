"""Wrong versions of an exercise's solution, derived mechanically from its notebook region.

For one exercise (an ``Exercise`` of ``shared.checks.EXERCISES``), ``mutants`` reads the solution
notebook, finds the cell whose top-level ``def``/``class`` the grader would take
(``shared.grading.extract``), and mutates only the statements between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` inside that definition, one change per mutant:

- arithmetic operator swaps (``+``/``-``, ``*``/``/``, ``@``/``*``, ``**``/``*``, ``//``/``/``...)
  in expressions and augmented assignments, and dropped terms of ``+``/``-`` (keep either side);
- comparison swaps (``<``/``<=``, ``>``/``>=``, ``<``/``>``, ``==``/``!=``, ``in``/``not in``),
  ``and``/``or``, a dropped ``not`` or unary minus, a negated ``if``/``while`` condition;
- integer constants off by one (``-1`` -> ``0``/``-2``: dims, slice bounds, indices, sizes),
  ``True``/``False`` swaps, a dropped slice bound or step;
- calls: a dropped keyword argument (``keepdim=True``, ``dim=-1``), a dropped positional argument,
  two positional arguments swapped, a method swapped for its usual confusion (``sum``/``mean``,
  ``max``/``min``, ``tril``/``triu``, ``softmax``/``log_softmax``, ...);
- iteration reversed (``for``/comprehensions over ``reversed(list(...))``);
- a statement removed (replaced by ``pass``).

Every mutant is identified by its exercise, the original statement and the mutated statement (one
line each, as ``ast.unparse`` writes them), which is what ``EQUIVALENT`` in ``tests.mutation``
keys on. Mutants whose program equals the solution's or another mutant's are dropped.

mutmut and cosmic-ray were considered: mutmut 3 rewrites whole files into trampolines driven by a
pytest run, and cosmic-ray's operators work on parso trees through a plugin registry and a session
database; neither takes a region of a notebook cell and hands back one program per mutant, and
neither has the tensor-specific operators (dims, keyword arguments, method confusions). This
module is a small ``ast`` mutator instead.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from shared.grading.extract import DEF_TYPES, extract, parse_cells

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
_BEGIN = re.compile(r"^[ \t]+### BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*### END SOLUTION\s*$")

_BINOPS = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div, ast.Add],
    ast.Div: [ast.Mult, ast.FloorDiv],
    ast.FloorDiv: [ast.Div, ast.Mod],
    ast.Mod: [ast.FloorDiv],
    ast.Pow: [ast.Mult],
    ast.MatMult: [ast.Mult],
}
_CMPOPS = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_METHODS = {
    "sum": "mean", "mean": "sum", "max": "min", "min": "max", "argmax": "argmin",
    "argmin": "argmax", "amax": "amin", "tril": "triu", "triu": "tril",
    "softmax": "log_softmax", "log_softmax": "softmax", "exp": "log", "log": "exp",
    "zeros": "ones", "ones": "zeros", "zeros_like": "ones_like", "ones_like": "zeros_like",
    "cumsum": "cumprod", "transpose": "permute", "view": "reshape", "sqrt": "rsqrt",
    "rsqrt": "sqrt", "multinomial": "argmax", "item": "tolist", "detach": "clone",
    "train": "eval", "eval": "train", "sort": "argsort", "topk": "kthvalue",
    "append": "insert", "extend": "append", "float": "long", "long": "float",
}  # fmt: skip


_COMMUTATIVE = {"min", "max"}  # builtins whose arguments are never swapped


@dataclass(frozen=True)
class Mutant:
    """One wrong version of an exercise: ``program`` is what the grader would run."""

    lesson: str
    exercise: str
    line: int  # line of the mutated statement in its cell
    original: str  # the statement before (first line, as ast.unparse writes it)
    mutated: str  # the statement after, or "(removed)"
    operator: str
    program: list[tuple[str, str]] = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.exercise, self.original, self.mutated)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def load_cells(lesson: str) -> list[dict]:
    path = SOLUTIONS / f"{lesson}.ipynb"
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def region_lines(source: str) -> set[int]:
    """1-based line numbers strictly between the solution markers of a cell."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if _BEGIN.match(line):
            inside = True
        elif _END.match(line):
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _walk(tree: ast.AST) -> list[tuple[ast.AST, ast.AST | None, str, int | None]]:
    """Every node with its parent, field and list index, in a fixed order."""
    out = [(tree, None, "", None)]
    for node, _, _, _ in out:  # grows while iterating: breadth first
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                out += [(v, node, name, i) for i, v in enumerate(value) if isinstance(v, ast.AST)]
            elif isinstance(value, ast.AST):
                out.append((value, node, name, None))
    return out


def _replace(parent: ast.AST, name: str, index: int | None, new: ast.AST) -> None:
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new


def _int_value(node: ast.AST) -> int | None:
    """The value of an int literal (``-1`` included), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _int_node(value: int) -> ast.expr:
    return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if value < 0 else ast.Constant(value)


def _edits(node: ast.AST, parent: ast.AST | None, name: str) -> list[tuple[str, object]]:
    """(operator, edit) pairs for one node; an edit returns the node's replacement (or mutates
    the node in place and returns it)."""
    out: list[tuple[str, object]] = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        for op in _BINOPS.get(type(node.op), []):
            out.append(("binop", lambda n, op=op: (setattr(n, "op", op()), n)[1]))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            out += [("drop term", lambda n: n.left), ("drop term", lambda n: n.right)]
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _CMPOPS.get(type(op), []):
                out.append(("compare", lambda n, i=i, new=new: (n.ops.__setitem__(i, new()), n)[1]))
    if isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append(("boolop", lambda n, other=other: (setattr(n, "op", other()), n)[1]))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        if _int_value(node) is None:
            out.append(("drop unary", lambda n: n.operand))
    value = _int_value(node)
    if value is not None and not (isinstance(parent, ast.UnaryOp) and name == "operand"):
        for new in (value + 1, value - 1):
            out.append(("off by one", lambda n, new=new: _int_node(new)))
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append(("bool", lambda n: ast.Constant(not n.value)))
    if isinstance(node, (ast.If, ast.While, ast.IfExp)):
        out.append(("negate", lambda n: (setattr(n, "test", ast.UnaryOp(ast.Not(), n.test)), n)[1]))
    if isinstance(node, ast.Slice):
        for part in ("lower", "upper", "step"):
            if getattr(node, part) is not None:
                out.append(("slice", lambda n, p=part: (setattr(n, p, None), n)[1]))
    if isinstance(node, ast.Call):
        out += _call_edits(node)
    if isinstance(node, (ast.For, ast.comprehension)):
        out.append(("reverse", _reverse))
    if isinstance(node, ast.stmt) and not isinstance(node, DEF_TYPES):
        out.append(("remove", lambda n: ast.Pass()))
    return out


def _call_edits(node: ast.Call) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for i in range(len(node.keywords)):
        out.append(("drop kwarg", lambda n, i=i: (n.keywords.pop(i), n)[1]))
    positional = [a for a in node.args if not isinstance(a, ast.Starred)]
    if len(positional) == len(node.args):
        for i in range(len(node.args)):
            out.append(("drop arg", lambda n, i=i: (n.args.pop(i), n)[1]))
        commutative = isinstance(node.func, ast.Name) and node.func.id in _COMMUTATIVE
        for i in range(0 if commutative else len(node.args) - 1):
            out.append(("swap args", _swap_args(i)))
    if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
        new = _METHODS[node.func.attr]
        out.append(("method", lambda n, new=new: (setattr(n.func, "attr", new), n)[1]))
    return out


def _swap_args(i: int):
    def edit(n: ast.Call) -> ast.Call:
        n.args[i], n.args[i + 1] = n.args[i + 1], n.args[i]
        return n

    return edit


def _reverse(n: ast.AST) -> ast.AST:
    wrapped = ast.Call(ast.Name("list", ast.Load()), [n.iter], [])
    n.iter = ast.Call(ast.Name("reversed", ast.Load()), [wrapped], [])
    return n


def _statement_of(entries, index: int) -> int:
    """Index (in ``entries``) of the innermost statement holding entry ``index``."""
    parents = {id(node): i for i, (node, _, _, _) in enumerate(entries)}
    i = index
    while not isinstance(entries[i][0], ast.stmt):
        parent = entries[i][1]
        i = parents[id(parent)]
    return i


def _first_line(node: ast.AST) -> str:
    return ast.unparse(node).splitlines()[0].strip() if not isinstance(node, ast.Pass) else ""


def mutants(lesson: str, exercise, cells: list[dict] | None = None) -> list[Mutant]:
    """Every distinct mutant of ``exercise``'s solution region, in a fixed order."""
    cells = cells if cells is not None else load_cells(lesson)
    statements, _ = parse_cells(cells)
    defs = [
        s for s in statements if isinstance(s.node, DEF_TYPES) and s.node.name == exercise.target
    ]
    main = defs[-1]
    source = _source(cells[main.cell - 1])
    region = region_lines(source)
    span = range(main.node.lineno, main.node.end_lineno + 1)
    region = {n for n in region if n in span}
    tree = ast.parse(source)
    entries = _walk(tree)
    baseline = extract(cells, exercise.target).program
    seen = {repr(baseline)}
    out: list[Mutant] = []
    for index, (node, parent, name, _) in enumerate(entries):
        if not hasattr(node, "lineno") or node.lineno not in region:
            continue
        if node.end_lineno not in region:
            continue
        for operator, edit in _edits(node, parent, name):
            mutant = _apply(tree, index, edit, lesson, exercise, cells, main.cell, operator)
            if mutant is not None and repr(mutant.program) not in seen:
                seen.add(repr(mutant.program))
                out.append(mutant)
    return out


def _apply(tree, index, edit, lesson, exercise, cells, cell_number, operator) -> Mutant | None:
    copied = copy.deepcopy(tree)
    entries = _walk(copied)
    node, parent, name, position = entries[index]
    holder = _statement_of(entries, index)
    statement = entries[holder][0]
    original = _first_line(statement)
    removed = isinstance(node, ast.stmt) and operator == "remove"
    try:
        new = edit(node)
        if new is not node:
            _replace(parent, name, position, new)
            if node is statement:
                statement = new
        ast.fix_missing_locations(copied)
        mutated_source = ast.unparse(copied)
        ast.parse(mutated_source)
    except (SyntaxError, ValueError, IndexError, AttributeError):
        return None
    changed = list(cells)
    changed[cell_number - 1] = {**cells[cell_number - 1], "source": mutated_source}
    program = extract(changed, exercise.target).program
    mutated = "(removed)" if removed else _first_line(statement)
    if mutated == original:
        mutated = f"{mutated}  [{operator} in the body]"
    return Mutant(lesson, exercise.name, node.lineno, original, mutated, operator, program=program)
