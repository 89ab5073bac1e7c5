"""lessons/ is generated from solutions/ and never drifts; the exercise markup is well formed."""

import re
from pathlib import Path

import nbformat
import pytest

from shared.checks import EXERCISES
from shared.course.lessons import STUB_MESSAGE, generate_all, has_exercise, make_lesson, stub_source
from shared.engine.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent
LESSONS = [
    "01_data",
    "02_bigram",
    "03_self_attention",
    "04_multihead",
    "05_block",
    "06_train",
    "07_generate",
    "08_attention_viz",
    "09_tokenizer",
    "10_modern_gpt",
]
CHECK_CALL = re.compile(r"^\s*(check_\w+)\((\w+)\)\s*$", re.MULTILINE)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


# --- the stub generator -------------------------------------------------------------------------


def test_stub_replaces_the_region_keeps_hints_and_indentation():
    source = (
        "def encode(text, stoi):\n"
        '    """Characters -> ids."""\n'
        "    ### BEGIN SOLUTION\n"
        "    # HINT: look each character up in stoi.\n"
        "    return [stoi[ch] for ch in text]\n"
        "    ### END SOLUTION\n"
        "\n"
        "print('after')"
    )
    stub = stub_source(source)
    assert stub.splitlines() == [
        "def encode(text, stoi):",
        '    """Characters -> ids."""',
        "    # HINT: look each character up in stoi.",
        "    # YOUR CODE HERE",
        f'    raise NotImplementedError("{STUB_MESSAGE}")',
        "",
        "print('after')",
    ]
    assert "stoi[ch] for ch" not in stub


def test_stub_handles_several_regions_in_one_cell():
    source = "class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n\n    def g(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION\n"
    stub = stub_source(source)
    assert stub.count("raise NotImplementedError") == 2
    assert "return 1" not in stub and "return 2" not in stub
    namespace = {}
    exec(stub, namespace)  # the stub is valid Python
    with pytest.raises(NotImplementedError, match="not implemented yet"):
        namespace["A"]().g()


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "indented inside a function"),
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a"),
        (
            "def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n",
            "nested",
        ),
    ],
)
def test_malformed_markers_are_refused_with_a_clear_message(source, message):
    with pytest.raises(CourseError, match=message):
        stub_source(source)


def test_make_lesson_strips_outputs_and_leaves_the_solution_untouched():
    solution = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    )
    cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
    cell.execution_count = 3
    solution.cells.append(cell)
    lesson = make_lesson(solution)
    exercise = lesson.cells[-1]  # after the Colab setup cell the generator puts first
    assert exercise.outputs == [] and exercise.execution_count is None
    assert "NotImplementedError" in exercise.source
    assert solution.cells[0].outputs and "return 1" in solution.cells[0].source
    assert len(solution.cells) == 1


# --- the committed notebooks ---------------------------------------------------------------------


def test_every_lesson_has_a_solution_and_a_generated_lesson():
    for stem in LESSONS:
        assert (ROOT / "solutions" / f"{stem}.ipynb").is_file(), f"solutions/{stem}.ipynb missing"
        assert (ROOT / "lessons" / f"{stem}.ipynb").is_file(), f"lessons/{stem}.ipynb missing"


def test_no_lesson_without_a_solution():
    lessons = {p.name for p in (ROOT / "lessons").glob("*.ipynb")}
    solutions = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert lessons <= solutions, f"stale lessons with no solution: {sorted(lessons - solutions)}"


def test_lessons_are_up_to_date_with_solutions():
    changed = generate_all(ROOT, check_only=True)
    assert not changed, f"run `python -m shared lessons` and commit: out of date {changed}"


@pytest.mark.parametrize("stem", LESSONS)
def test_lesson_is_clean_valid_and_has_no_solution(stem):
    path = ROOT / "lessons" / f"{stem}.ipynb"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet (reported by the test above)")
    lesson = read(path)
    nbformat.validate(lesson)
    for cell in lesson.cells:
        assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("stem", LESSONS)
def test_each_exercise_is_followed_by_its_registered_check(stem):
    path = ROOT / "solutions" / f"{stem}.ipynb"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    code_cells = [c.source for c in read(path).cells if c.cell_type == "code"]
    calls = []
    for index, source in enumerate(code_cells):
        if has_exercise(source):
            following = code_cells[index + 1] if index + 1 < len(code_cells) else ""
            found = CHECK_CALL.findall(following)
            assert found, (
                f"{stem}: the cell after exercise cell #{index} must call check_<name>(target)"
            )
            calls.extend(found)
    registered = [(exercise.check, exercise.target) for exercise in EXERCISES[stem]]
    assert calls, f"{stem} has no exercises"
    assert calls == registered, (
        f"{stem}: check cells {calls} != shared.checks.EXERCISES {registered}"
    )


def test_every_registered_check_exists():
    import shared.checks

    for stem, exercises in EXERCISES.items():
        for exercise in exercises:
            assert callable(getattr(shared.checks, exercise.check, None)), (
                f"{stem}: {exercise.check}"
            )


@pytest.mark.parametrize("stem", LESSONS)
def test_lessons_carry_the_colab_header_only_once_the_repository_is_published(stem):
    from shared.course.colab import badge_markdown, repository_url, setup_cell

    url = repository_url(ROOT)
    cells = read(ROOT / "lessons" / f"{stem}.ipynb").cells
    title = next(c for c in cells if c.cell_type == "markdown")
    first_code = next(c for c in cells if c.cell_type == "code")
    if url is None:  # not published yet: no badge to a 404, no cell cloning nothing
        assert all("colab" not in c.source.lower() for c in cells)
    else:
        assert title.source.startswith(badge_markdown(f"lessons/{stem}.ipynb", url))
        assert first_code.source == setup_cell(url).rstrip("\n") and cells.index(first_code) == 1
    solution = read(ROOT / "solutions" / f"{stem}.ipynb").cells
    assert all("google.colab" not in c.source for c in solution)  # lessons only: one source


def test_with_a_repository_the_lesson_opens_with_the_badge_and_setup_cell():
    from shared.course.colab import badge_markdown, setup_cell

    url = "https://github.com/course-author/gpt-quijote-course"
    solution = read(ROOT / "solutions" / "01_data.ipynb")
    lesson = make_lesson(solution, name="01_data.ipynb", repo_url=url)
    assert lesson.cells[0].source.startswith(badge_markdown("lessons/01_data.ipynb", url) + "\n\n#")
    assert lesson.cells[1].source == setup_cell(url).rstrip("\n")
    plain = make_lesson(solution, name="01_data.ipynb")
    assert len(plain.cells) == len(lesson.cells) - 1 and plain.cells[0].source.startswith("#")
