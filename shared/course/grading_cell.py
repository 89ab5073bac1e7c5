"""The code the grader runs inside a learner's kernel, and the static review of a notebook.

``grading_cell_source(spec)`` builds the cell appended after the learner's notebook: it runs
``_kernel_grade`` (below) through ``exec`` with fresh globals, so names the notebook rebinds
(``print``, ``isinstance``...) cannot shadow the grader's. ``_kernel_grade`` purges every
``shared*`` module (and the checks module) from ``sys.modules``, imports the checks again from
the installed files through the plain path finder, verifies their location, refuses targets
that are the reference implementation, and calls each check with a time limit. Each result is
printed on one line tagged with the run's random marker; ``parse_grading_output`` reads only
those lines, so anything else the notebook prints is ignored.

Lessons go on with the reference after each check cell (``from shared.x import Target``), so
a silent "snapshot" run of the same code after every learner cell remembers the learner's own
definition of each target; that one is graded when the final binding is the reference.
Before grading, functions of torch, math, builtins... that were replaced by notebook code
(``torch.allclose = lambda *a: True``) make the grader refuse the notebook.

What this defends against: edited, deleted or faked check cells; redefined or monkeypatched
check functions, ``shared`` modules or checks modules; fake packages written into the cwd;
printed fake results; rebinding builtins in the notebook's namespace; importing the reference.
What it cannot: code that deliberately subverts the Python runtime of the kernel (patching the
``builtins`` module, import machinery or IPython hooks) can fool any in-kernel grader;
``review_flags`` points the instructor at such notebooks.
"""

from __future__ import annotations

import builtins
import inspect
import json
import re

import nbformat

# ----------------------------------------------------------------- suspicious-code review flags

_BUILTIN_NAMES = set(dir(builtins))
_SUSPICIOUS = [
    (r"\bsys\.modules\b", "touches sys.modules"),
    (r"\b(meta_path|path_hooks|path_importer_cache)\b", "changes the import system"),
    (r"\b(__builtins__|builtins)\b", "touches builtins"),
    (r"\b(settrace|setprofile|addaudithook)\b", "installs tracing/audit hooks"),
    (r"\b(input_transformers\w*|ast_transformers|events\.register)\b", "hooks IPython"),
    (r"\bctypes\b", "uses ctypes"),
    (r"\bgc\.get_referr", "walks the garbage collector"),
    (r"\bos\._exit\b", "calls os._exit"),
    (r"\bsys\.(stdout|stderr)\s*=", "replaces sys.stdout/stderr"),
    (r"\bsignal\.(signal|setitimer|alarm|pthread_sigmask)\b", "changes signal handling"),
    (
        r"(\bsetattr|\bdelattr)\s*\(\s*(shared|torch|np|numpy|math|random|F|nn)\b",
        "patches a library",
    ),
    (r"^\s*(shared|torch|np|numpy|math|random|F|nn)(\.\w+)+\s*=[^=]", "patches a library"),
    (r"\bshared\.checks\b[\w.]*\s*=[^=]", "patches shared.checks"),
]


def review_flags(nb: nbformat.NotebookNode) -> list[str]:
    """Static hints for a human: code that rebinds builtins, patches libraries or hooks Python.

    A notebook that deliberately subverts the Python runtime can fool any in-kernel grader;
    these flags point the instructor at the few notebooks worth reading.
    """
    flags: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        for pattern, label in _SUSPICIOUS:
            if re.search(pattern, source, flags=re.MULTILINE):
                flags.append(f"cell {index + 1} {label}")
        for match in re.finditer(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=[^=]", source, re.MULTILINE):
            name = match.group(1) or match.group(2)
            if name in _BUILTIN_NAMES:
                flags.append(f"cell {index + 1} redefines the builtin `{name}`")
    return list(dict.fromkeys(flags))


# ------------------------------------------------------------------- code run inside the kernel


def _kernel_grade(spec):  # pragma: no cover - runs inside the learner's kernel
    """Grade the exercises in the kernel that just ran the learner's notebook.

    Runs through ``exec`` with fresh globals, so names the notebook defined (``print``,
    ``isinstance``...) cannot shadow ours; ``user_ns`` is the notebook's namespace.
    """
    import contextlib
    import importlib
    import importlib.machinery as machinery
    import inspect
    import io
    import json
    import os
    import signal
    import sys

    stream = sys.stdout

    def emit(**record):
        stream.write(spec["marker"] + " " + json.dumps(record, ensure_ascii=True) + "\n")
        stream.flush()

    def inside(path, folder):
        return bool(path) and os.path.realpath(path).startswith(folder + os.sep)

    def code_file(obj):
        obj = inspect.unwrap(getattr(obj, "func", obj)) if callable(obj) else obj
        obj = getattr(obj, "__func__", obj)
        code = getattr(obj, "__code__", None)
        return code.co_filename if code is not None else None

    package_dir = spec["package_dir"]

    def is_reference_class(cls):
        if str(getattr(cls, "__module__", "")).split(".")[0] == "shared":
            return True
        own = [v for v in vars(cls).values() if code_file(v)]
        return any(inside(code_file(v), package_dir) for v in own)

    def reference_reason(obj):
        if not inspect.isclass(obj) and callable(obj) and code_file(obj):
            where = code_file(obj)
            return (
                f"its code lives in {os.path.basename(where)} of shared"
                if inside(where, package_dir)
                else None
            )
        cls = obj if inspect.isclass(obj) else type(obj)
        if is_reference_class(cls):
            return f"it is {cls.__module__}.{cls.__qualname__} itself"
        mro = list(cls.__mro__)
        refs = [k for k in mro if is_reference_class(k)]
        if not refs:
            return None
        learner = [k for k in mro[: mro.index(refs[0])]]
        written = {n for k in learner for n, v in vars(k).items() if code_file(v)}
        skip = {"__init__", "__new__", "__init_subclass__", "__repr__", "__str__"}
        exercised = {
            n
            for k in refs
            for n, v in vars(k).items()
            if code_file(v) and n not in skip and (not n.startswith("__") or n == "__call__")
        }
        if exercised and not (exercised & written):
            names = ", ".join(sorted(exercised)[:3])
            return f"it subclasses {refs[0].__module__}.{refs[0].__qualname__} without writing its own {names}"
        return None

    def notebook_made(fn):
        """Code written in a notebook cell (or exec'd text), not in an installed file."""
        path = code_file(fn)
        if not path or path.startswith("<frozen"):
            return False
        if path.startswith("<"):
            return True
        real = os.path.realpath(path)
        if any(inside(real, d) for d in spec["installed_dirs"]):
            return False
        return inside(real, spec["temp_dir"]) or inside(real, os.path.realpath(os.getcwd()))

    def patched_libraries():
        """Functions the checks rely on (torch, math, builtins...) replaced by notebook code."""
        found = []
        for module_name, attr in spec["guarded"]:
            owner = sys.modules.get(module_name)
            owner = getattr(owner, attr, None) if owner is not None and attr else owner
            if owner is None:
                continue
            label = module_name + (f".{attr}" if attr else "")
            for key, value in list(vars(owner).items()):
                try:
                    if callable(value) and notebook_made(value):
                        found.append(f"{label}.{key}")
                except Exception:
                    continue
        return found

    def load_checks():
        # Forget every module the notebook could have replaced or patched, then import the
        # installed files again through the plain path finder only.
        tops = {"shared", spec["checks_module"].split(".")[0]}
        for name in list(sys.modules):
            if name.split(".")[0] in tops:
                del sys.modules[name]
        saved_meta, saved_path = list(sys.meta_path), list(sys.path)
        try:
            sys.meta_path[:] = [
                machinery.BuiltinImporter,
                machinery.FrozenImporter,
                machinery.PathFinder,
            ]
            sys.path[:] = spec["import_path"] + saved_path
            for entry in spec["import_path"]:
                sys.path_importer_cache.pop(entry, None)
            importlib.invalidate_caches()
            module = importlib.import_module(spec["checks_module"])
        finally:
            sys.meta_path[:] = saved_meta
            sys.path[:] = saved_path
        if os.path.realpath(getattr(module, "__file__", "") or "") != spec["checks_file"]:
            raise RuntimeError(f"{spec['checks_module']} did not load from the installed files")
        return module

    class CheckTimeout(
        BaseException
    ):  # BaseException: `except Exception` in learner code can't eat it
        pass

    def on_alarm(signum, frame):
        raise CheckTimeout()

    user_ns = spec_user_ns  # noqa: F821 - injected by the grading cell
    # Lessons go on with the reference after each check cell (`from shared.x import Target`),
    # so the learner's own definition is remembered after every cell ("snapshot" mode) and
    # graded when the final binding is the reference. Tampering with this store gains nothing:
    # whatever it holds must still pass the installed check and not be the reference.
    store = sys.modules.get("__course_grader_store__")
    if store is None or not isinstance(getattr(store, "candidates", None), dict):
        store = sys.modules["__course_grader_store__"] = type(sys)("__course_grader_store__")
        store.candidates = {}
    if spec["mode"] == "snapshot":
        for _name, _check, target in spec["exercises"]:
            if target in user_ns:
                try:
                    if reference_reason(user_ns[target]) is None:
                        store.candidates[target] = user_ns[target]
                except Exception:
                    pass
        return
    patched = patched_libraries()
    if patched:
        message = (
            "grading refused: the notebook replaced library functions the checks rely on "
            f"({', '.join(patched[:5])}); remove that code"
        )
        for name, _check, _target in spec["exercises"]:
            emit(event="result", exercise=name, status="error", message=message)
        emit(event="done")
        return
    try:
        checks = load_checks()
    except BaseException as exc:
        emit(
            event="fatal",
            message=f"could not load the installed checks: {type(exc).__name__}: {exc}",
        )
        return
    for name, check_name, target in spec["exercises"]:
        emit(event="start", exercise=name)
        status, message = "fail", ""
        check = getattr(checks, check_name, None)
        if check is None or not any(inside(code_file(check), d) for d in spec["trusted_dirs"]):
            emit(event="result", exercise=name, status="error", message=f"no trusted {check_name}")
            continue
        if target not in user_ns and target not in store.candidates:
            message = f"`{target}` is not defined: keep and run the cell that defines it"
            emit(event="result", exercise=name, status="fail", message=message)
            continue
        candidate = user_ns.get(target, store.candidates.get(target))
        try:
            reason = reference_reason(candidate)
            if reason and target in store.candidates:  # graded: the learner's own, from before
                candidate = store.candidates[target]
                reason = reference_reason(candidate)
        except Exception as exc:
            reason = f"it could not be inspected ({type(exc).__name__})"
        if reason:
            message = (
                f"uses the reference implementation from shared instead of your own ({reason})"
            )
            emit(event="result", exercise=name, status="fail", message=message)
            continue
        captured = io.StringIO()
        alarm = hasattr(signal, "setitimer")  # not on Windows: nbclient's interrupt stops it
        if alarm:
            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, spec["check_timeout"])
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                check(candidate)
            status = "pass"
            lines = [ln for ln in captured.getvalue().splitlines() if ln.startswith("PASSED")]
            message = lines[-1] if lines else "PASSED"
        except CheckTimeout:
            status, message = "timeout", f"the check did not finish in {spec['check_timeout']} s"
        except KeyboardInterrupt:
            status, message = "timeout", "interrupted: the check took too long"
        except AssertionError as exc:
            message = str(exc) or "the check failed"
        except BaseException as exc:
            message = f"the check crashed on your code: {type(exc).__name__}: {exc}"
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        emit(event="result", exercise=name, status=status, message=message[:2000])
    emit(event="done")


def snapshot_source(spec: dict) -> str:
    """The silent cell run after each learner cell: remember the learner's own targets."""
    return grading_cell_source({**spec, "mode": "snapshot"})


def grading_cell_source(spec: dict) -> str:
    """The cell the grader appends: defines ``_kernel_grade`` in fresh globals and calls it."""
    source = inspect.getsource(_kernel_grade)
    program = f"{source}\n_kernel_grade({spec!r})\n"
    return (
        f"exec(compile({program!r}, '<course grader>', 'exec'), "
        "{'__name__': '__course_grader__', 'spec_user_ns': globals()})\n"
    )


def parse_grading_output(outputs: list, marker: str) -> list[dict]:
    """Records the grading cell printed under ``marker`` (anything else is ignored)."""
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    records = []
    for line in text.splitlines():
        if line.startswith(marker + " "):
            try:
                records.append(json.loads(line[len(marker) + 1 :]))
            except json.JSONDecodeError:
                continue
    return records
