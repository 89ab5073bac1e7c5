"""Find a class's submissions: ``DIR/<student>/<NN_name>.ipynb``, never through a symlink.

Every folder is a student, hidden names and names that are not UTF-8 included; anything else
gets a note saying it was ignored, so nothing disappears silently.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shared.engine.errors import CourseError


def graded_lessons(registry: dict) -> list[str]:
    return [lesson for lesson, exercises in registry.items() if exercises]


def display_name(name: str) -> str:
    """A folder name as text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def find_submissions(root: Path, registry: dict):
    """Students, {(student, lesson): path or None for a symlink}, and notes about the rest.

    Every folder is a student (hidden or odd names included); symlinks are never followed.
    """
    if not root.exists():
        raise CourseError(
            f"submissions folder {root} does not exist; expected DIR/<student>/<NN_name>.ipynb"
        )
    if not root.is_dir():
        raise CourseError(f"{root} is not a folder; expected DIR/<student>/<NN_name>.ipynb")
    lessons = set(graded_lessons(registry))
    if not lessons:
        raise CourseError(
            "no lesson has registered exercises yet (shared.checks.EXERCISES is empty)"
        )
    students, found, notes = [], {}, []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        name = display_name(entry.name)
        if entry.is_symlink():
            notes.append(f"ignored {name}: a symbolic link (not followed)")
            continue
        if not entry.is_dir(follow_symlinks=False):
            notes.append(f"ignored {name}: not a student folder")
            continue
        if name in students:
            notes.append(f"ignored {name}: same name as another folder once shown as text")
            continue
        students.append(name)
        for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
            stem, suffix = os.path.splitext(item.name)
            if suffix == ".ipynb" and stem in lessons:
                regular = item.is_file(follow_symlinks=False)
                found[name, stem] = Path(item.path) if regular else None
            elif not item.name.startswith("."):
                notes.append(f"ignored {name}/{display_name(item.name)}: not a lesson notebook")
    if not students:
        raise CourseError(f"no student folders in {root}; expected DIR/<student>/<NN_name>.ipynb")
    return students, found, notes


def package_fingerprint() -> str:
    """Hash of the installed course package (it must not change while grading)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()
