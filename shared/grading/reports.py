"""What ``grade`` writes next to the gradebook besides the CSV and the Markdown.

    feedback/<student>.md             one report per student, to send them (shared.grading.feedback)
    canvas.csv                        points per student and lesson, for Canvas (shared.grading.lms)
    gradescope/<student>/results.json Gradescope's autograder format (shared.grading.lms)
    similarity.md                     pairs with near-identical definitions (shared.grading.similarity)

``grade`` calls ``prepare`` before grading (the paths and ``--points`` are checked, so a bad
file costs a second, not a class's grading) and ``Outputs.write`` after every sandbox has
ended: the grader writes these files itself, outside the submissions folder, from the
gradebook's records; no student code runs while they are written or can reach them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shared.engine.errors import CourseError

FEEDBACK, GRADESCOPE = "feedback", "gradescope"
CANVAS, SIMILARITY = "canvas.csv", "similarity.md"
MAX_NAME_CHARS = 100


def add_options(parser) -> None:
    parser.add_argument(
        "--points",
        metavar="FILE",
        help='points per exercise for canvas.csv and Gradescope, JSON or TOML ({"head": 2}); '
        "default: 1 per required exercise, 0 per optional one",
    )


def file_names(students: list[str]) -> dict[str, str]:
    """A distinct, safe file name (no path, not hidden, not too long) for every student."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for student in students:
        name = re.sub(r"[^\w.@+-]", "_", student)[:MAX_NAME_CHARS]
        name = "_" + name if name.startswith(".") or not name else name
        candidate, n = name, 2
        while candidate.lower() in taken:  # case-insensitive file systems too
            candidate, n = f"{name}-{n}", n + 1
        taken.add(candidate.lower())
        names[student] = candidate
    return names


@dataclass
class Outputs:
    folder: Path  # the gradebook's folder
    points: object  # shared.grading.lms.Points
    registry: dict
    references: dict | None = None  # similarity: our solutions and stubs (None: solutions/)

    def write(self, book) -> list[Path]:
        """Write every report for ``book``; the paths written (folders for the per-student ones)."""
        from shared.grading.feedback import write_feedback
        from shared.grading.lms import write_canvas, write_gradescope
        from shared.grading.similarity import write_similarity

        names = file_names(book.students)
        write_feedback(book, self.points, self.folder / FEEDBACK, names)
        write_canvas(book, self.points, self.folder / CANVAS)
        write_gradescope(book, self.points, self.folder / GRADESCOPE, names)
        write_similarity(book, self.registry, self.folder / SIMILARITY, self.references)
        return [self.folder / name for name in (FEEDBACK, CANVAS, GRADESCOPE, SIMILARITY)]


def prepare(out: Path, submissions: Path, points_file, registry: dict) -> Outputs:
    """Check where the reports go and the points file, before any grading starts."""
    from shared.grading.lms import load_points

    folder = Path(out).parent
    inside = Path(submissions).resolve()
    for name, want_dir in (
        (FEEDBACK, True),
        (GRADESCOPE, True),
        (CANVAS, False),
        (SIMILARITY, False),
    ):
        path = folder / name
        resolved = path.resolve()
        if resolved.is_relative_to(inside) or inside.is_relative_to(resolved):
            raise CourseError(
                f"{path} (written next to --out) overlaps the submissions folder; "
                "choose an --out in another folder"
            )
        if path.is_symlink() or (path.exists() and path.is_dir() != want_dir):
            kind = "a folder" if want_dir else "a file"
            raise CourseError(
                f"{path} (written next to --out) exists and is not {kind}; move it away "
                "or choose another --out"
            )
    return Outputs(folder, load_points(points_file, registry), registry)
