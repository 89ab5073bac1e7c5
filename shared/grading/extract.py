"""Take an exercise's definition out of a notebook's cell sources, with what it needs.

The grader checks the learner's ``def``/``class`` of the exercise's name, not whatever the
learner's kernel ends up holding. ``extract`` builds a small program from the cell sources:

- the last top-level ``def``/``class`` of the target's name (a syntax error in its cell is
  reported as such);
- for every name it uses (transitively), the notebook's last top-level binding of that name up
  to the target's cell, when it is a ``def``/``class`` (a helper), an ``import`` (the lesson's
  standard imports and the reference components it builds on, e.g. ``Head`` for
  ``MultiHeadAttention``) or a literal constant (``block_size = 8``); nothing else of the
  notebook runs.

It also reads that program: using the reference implementation of the exercise's own target
(``from shared.attention import Head as H``, ``shared.attention.Head``) is a failure; code that
could reach around the checks (``exec``, ``importlib``, ``os``, ``sys``, dunder attributes...)
gets a review flag for a human.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Packages holding the reference implementation (tests add a fake one).
REFERENCE_PACKAGES = ["shared"]
# Names worth a human look in a definition: ways around the checks or out of the process.
FLAG_NAMES = {
    "exec": "exec",
    "eval": "eval",
    "compile": "compile",
    "__import__": "__import__",
    "importlib": "importlib",
    "getattr": "getattr",
    "setattr": "setattr",
    "delattr": "delattr",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "open": "open",
    "breakpoint": "breakpoint",
    "input": "input",
}
FLAG_MODULES = {
    "sys", "os", "builtins", "json", "subprocess", "signal", "ctypes", "gc", "inspect", "types",
    "marshal", "pickle", "threading", "multiprocessing", "shutil", "socket", "io", "pathlib",
    "importlib", "runpy", "code", "codeop", "shared.checks",
}  # fmt: skip
FLAG_ATTRS = {
    "system", "popen", "_exit", "kill", "killpg", "fork", "environ", "modules", "_getframe",
    "f_globals", "f_locals", "f_back", "settrace", "setprofile", "import_module", "exec_module",
}  # fmt: skip
ALLOWED_DUNDERS = {"__init__", "__call__", "__name__", "__doc__", "__len__", "__repr__"}


@dataclass
class Extraction:
    """What the checker runs for one exercise, or why it cannot."""

    program: list[tuple[str, str]] = field(default_factory=list)  # (label, source), in order
    fail: str = ""  # set: the exercise fails without running anything
    flags: list[str] = field(default_factory=list)  # review notes for the instructor
    computed: list[str] = field(default_factory=list)  # names it uses that cells compute

    def hint(self, message: str) -> str:
        """Explain a NameError for a variable that only the notebook's run computes."""
        for name in self.computed:
            if f"name '{name}' is not defined" in message:
                return (
                    f"{message} (`{name}` is computed in another cell: the grader runs your "
                    "definition on its own, with your imports, functions, classes and constants "
                    "only; pass it as an argument or define it inside)"
                )
        return message


@dataclass
class _Stmt:
    cell: int  # 1-based, markdown cells included (as the learner sees them)
    order: int
    node: ast.stmt


def _python_source(source: str) -> str:
    """Cell source with IPython syntax (``%magic``, ``!cmd``) turned into Python."""
    if not re.search(r"^\s*[%!]|\?\s*$", source, flags=re.MULTILINE):
        return source
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def parse_python(source: str) -> ast.Module:
    """``ast.parse``, tried once more on CPython 3.11's spurious "AST constructor recursion depth
    mismatch" SystemError (the C-level depth it checks can move under it while the tree is being
    built; seen once in CI, in the grader's similarity report, and not reproducible on a retry)."""
    try:
        return ast.parse(source)
    except SystemError as exc:
        if "recursion depth mismatch" not in str(exc):
            raise
        return ast.parse(source)


def parse_cells(cells: list) -> tuple[list[_Stmt], dict[int, str]]:
    """Top-level statements of every code cell, and the syntax errors by cell number."""
    statements, errors = [], {}
    for index, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = parse_python(_python_source(source))
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            errors[index] = f"line {line}: {getattr(exc, 'msg', exc)}" if line else str(exc)
            continue
        statements += [_Stmt(index, n, node) for n, node in enumerate(tree.body)]
    return statements, errors


def _binds(node: ast.stmt) -> dict[str, str]:
    """Names a top-level statement binds -> how ("def", "import", "const", "other")."""
    if isinstance(node, DEF_TYPES):
        return {node.name: "def"}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name.split(".")[0]): "import" for a in node.names if a.name != "*"}
    if isinstance(node, ast.Assign):
        kind = "other"
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                ast.literal_eval(node.value)
                kind = "const"
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
        return {n.id: kind for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return {}


def _only(node: ast.stmt, name: str) -> ast.stmt:
    """An import statement reduced to the alias that binds ``name``."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a for a in node.names if (a.asname or a.name.split(".")[0]) == name]
        copy = ast.Import(names=names) if isinstance(node, ast.Import) else None
        if copy is None:
            copy = ast.ImportFrom(module=node.module, names=names, level=node.level)
        return ast.fix_missing_locations(ast.copy_location(copy, node))
    return node


def _imported_from(node: ast.stmt, name: str) -> tuple[str, str]:
    """(module, imported name) for the alias binding ``name``; imported name "" for modules."""
    for alias in node.names:
        if (alias.asname or alias.name.split(".")[0]) != name:
            continue
        if isinstance(node, ast.ImportFrom):
            return ("." * node.level) + (node.module or ""), alias.name
        return (alias.name if alias.asname else alias.name.split(".")[0]), ""
    return "", ""


def _is_shared(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in REFERENCE_PACKAGES)


def extract(cells: list, target: str) -> Extraction:
    """The program that defines ``target`` the way the notebook does, or why it cannot."""
    statements, errors = parse_cells(cells)
    defs = [s for s in statements if isinstance(s.node, DEF_TYPES) and s.node.name == target]
    if not defs:
        pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(target)}\b"
        for index, cell in enumerate(cells, start=1):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if index in errors and re.search(pattern, source, flags=re.MULTILINE):
                return Extraction(fail=f"syntax error in cell {index} ({errors[index]})")
        broken = f" (cells with syntax errors: {', '.join(map(str, errors))})" if errors else ""
        return Extraction(
            fail=f"no `def {target}` or `class {target}` found in the notebook's code cells"
            f"{broken}: keep (and run) the cell that defines it"
        )
    main = defs[-1]
    visible = [s for s in statements if s.cell <= main.cell]
    chosen: dict[str, _Stmt] = {}  # name -> the statement that binds it
    todo = [main]
    seen_ids = {id(main)}
    computed: list[str] = []
    while todo:
        stmt = todo.pop()
        for node in ast.walk(stmt.node):
            if not isinstance(node, ast.Name) or node.id == target or node.id in chosen:
                continue
            binding, kind = None, None
            for candidate in reversed(visible):
                kind = _binds(candidate.node).get(node.id)
                if kind:
                    binding = candidate if kind in ("def", "import", "const") else None
                    break
            if binding is None:
                if kind == "other":
                    computed.append(node.id)
                continue
            chosen[node.id] = binding
            if isinstance(binding.node, DEF_TYPES) and id(binding) not in seen_ids:
                seen_ids.add(id(binding))
                todo.append(binding)
    result = Extraction(computed=sorted(set(computed)))
    parts = sorted(
        [(s.cell, s.order, name, s) for name, s in chosen.items()]
        + [(main.cell, main.order, target, main)],
        key=lambda item: (item[0], item[1]),
    )
    for cell, _order, name, stmt in parts:
        code = stmt.node if stmt is main else _only(stmt.node, name)
        result.program.append((f"cell {cell}", ast.unparse(code)))
    imports = {n: s for n, s in chosen.items() if isinstance(s.node, (ast.Import, ast.ImportFrom))}
    code_nodes = [s for s in {id(s): s for s in [main, *chosen.values()]}.values()]
    code_nodes = [s for s in code_nodes if isinstance(s.node, DEF_TYPES)]
    result.fail = _uses_reference(code_nodes, imports, target)
    result.flags = _review(code_nodes, imports)
    return result


def _uses_reference(code: list[_Stmt], imports: dict[str, _Stmt], target: str) -> str:
    """A failure message when the definition reaches the reference of its own target.

    Every way of naming it counts: ``from shared.attention import Head as H``, module aliases
    (``from shared import attention as a``, ``import shared.attention as a``, then ``a.Head``),
    attribute chains (``shared.attention.Head``), imports inside the definition,
    ``getattr(a, "Head")``, ``importlib.import_module("shared.attention").Head``,
    ``sys.modules["shared.attention"].Head`` and local names bound to any of these.
    """
    aliases = {name: _import_path(stmt.node, name) for name, stmt in imports.items()}
    for stmt in code:
        local = dict(aliases)
        nodes = list(ast.walk(stmt.node))
        for node in nodes:  # imports and simple assignments inside the definition
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    local[bound] = _import_path(node, bound)
        for _ in range(3):  # a = shared; b = a.attention; ... (a few steps are plenty)
            for node in nodes:
                if isinstance(node, (ast.Assign, ast.NamedExpr)):
                    path = _dotted(node.value, local)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for name in targets:
                        if path and isinstance(name, ast.Name):
                            local[name.id] = path
        for node in nodes:
            paths = [_dotted(node, local)] if isinstance(node, ast.expr) else []
            if isinstance(node, ast.ImportFrom):
                paths += [f"{node.module}.{a.name}" for a in node.names if node.module]
            if isinstance(node, ast.Import):
                paths += [a.name for a in node.names]
            for path in paths:
                if path and _is_shared(path) and path.split(".")[-1] == target:
                    return _reference_message(path, stmt.cell)
    return ""


def _import_path(node: ast.stmt, name: str) -> str:
    """The dotted path an import binds to ``name`` (``import a.b`` binds ``a`` to "a")."""
    module, imported = _imported_from(node, name)
    if module.startswith("."):
        return ""
    return f"{module}.{imported}" if imported else module


def _dotted(node: ast.AST, names: dict[str, str]) -> str:
    """The dotted path an expression names, when it is built from imports and constants."""
    if isinstance(node, ast.Name):
        return names.get(node.id, "")
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else ""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        key = node.slice.value
        base = node.value
        if isinstance(key, str) and isinstance(base, ast.Attribute) and base.attr in ("modules",):
            return key if _dotted(base.value, names) == "sys" else ""
        if isinstance(key, str):  # vars(module)["Head"], module.__dict__["Head"]
            inner = (
                base.value if isinstance(base, ast.Attribute) and base.attr == "__dict__" else None
            )
            if isinstance(base, ast.Call) and _call_name(base) == "vars" and base.args:
                inner = base.args[0]
            prefix = _dotted(inner, names) if inner is not None else ""
            return f"{prefix}.{key}" if prefix else ""
    if isinstance(node, ast.Call):
        called = _call_name(node)
        if called == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            base = _dotted(node.args[0], names)
            attr = node.args[1].value
            return f"{base}.{attr}" if base and isinstance(attr, str) else ""
        function = _dotted(node.func, names)
        if (function in ("importlib.import_module", "__import__") or called == "__import__") and (
            node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            return node.args[0].value
    return ""


def _call_name(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else ""


def _reference_message(what: str, cell: int) -> str:
    return f"uses the reference implementation `{what}` (cell {cell}) instead of your own"


def _review(code: list[_Stmt], imports: dict[str, _Stmt]) -> list[str]:
    """Review flags: what in the definition (and its helpers) could reach around the checks."""
    flags = []
    for stmt in code:
        where = f"`{stmt.node.name}` (cell {stmt.cell})"
        found = []
        for node in ast.walk(stmt.node):
            if isinstance(node, ast.Name):
                if node.id in FLAG_NAMES:
                    found.append(FLAG_NAMES[node.id])
                if node.id in imports:
                    module, name = _imported_from(imports[node.id].node, node.id)
                    top = ".".join(module.split(".")[:2]) if _is_shared(module) else module
                    if top in FLAG_MODULES or module.split(".")[0] in FLAG_MODULES:
                        found.append(module + (f".{name}" if name else ""))
                elif node.id in FLAG_MODULES:
                    found.append(node.id)
            elif isinstance(node, ast.Attribute):
                dunder = node.attr.startswith("__") and node.attr not in ALLOWED_DUNDERS
                if dunder or node.attr in FLAG_ATTRS:
                    found.append(f".{node.attr}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                found.append("an import inside the definition (" + ", ".join(names) + ")")
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                found.append("global/nonlocal state")
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = (
                    node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                )
                for target in targets:
                    root = target
                    while isinstance(root, (ast.Attribute, ast.Subscript)):
                        root = root.value
                    if root is not target and isinstance(root, ast.Name) and root.id in imports:
                        found.append(f"changes `{root.id}` (a module or imported object)")
        if found:
            flags.append(f"{where} uses " + ", ".join(dict.fromkeys(found)))
    return flags
