"""Crash hints for lessons 05, 09 and 10: a learner's exception, matched by its type and a
fragment of its message, becomes one line that names the likely mistake of *that* exercise.

``crash_hint(what, rules)`` builds the ``hint=`` callable that ``call`` takes: each rule is
``(exception type names or None, fragment of the message or "", cause)``; the first rule that
matches wins, and when none does ``call`` falls back to the generic causes of ``_crash``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shared.engine.errors import one_line

Rule = tuple[tuple[str, ...] | None, str, str]


def crash_hint(what: str, rules: Iterable[Rule]) -> Callable[[Exception], str | None]:
    """The ``hint=`` for ``call``: ``"<what> raised <Type>: <message>. <cause>."`` or None."""
    rules = list(rules)

    def hint(exc: Exception) -> str | None:
        kind, text = type(exc).__name__, str(exc)
        for kinds, fragment, cause in rules:
            if (kinds is None or kind in kinds) and fragment.lower() in text.lower():
                return f"{what} raised {kind}: {one_line(exc, 120)}. {cause}"
        return None

    return hint


def torch_errors_unmasked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with torch's "... not implemented for 'Float'" (a ``NotImplementedError``, e.g.
    ``^`` on floats) raised as a ``RuntimeError``, so ``call`` reports the crash and its hint
    instead of mistaking it for the untouched stub."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            if "not implemented for" in str(exc):
                raise RuntimeError(str(exc)) from None
            raise

    run.forward = getattr(fn, "forward", fn)  # type: ignore[attr-defined]  # for argument names
    run.__name__ = getattr(fn, "__name__", type(fn).__name__)
    return run
