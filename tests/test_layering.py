"""The package's layers stay apart, the top of ``shared`` holds only the lesson components, and
nothing in ``shared`` imports in a circle."""

import importlib
import re
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import shared


def test_import_linter_contracts_are_kept():
    # Reads [tool.importlinter] from pyproject.toml: the reference and the engine never import
    # the lesson tools, shared.course, shared.grading, argparse, subprocess or notebook tooling.
    assert lint_imports(no_cache=True) == 0


def test_no_import_cycles_in_shared():
    graph = grimp.build_graph("shared")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_reference_layer_is_what_the_package_docstring_lists():
    for module in ("data", "bigram", "attention", "block", "model", "train", "generate", "viz"):
        assert f"shared.{module}" in shared.__doc__


ROOT = Path(shared.__file__).parent.parent


def readme_lessons() -> dict[str, str]:
    """README's "Where is what" lesson table: {module: its lesson, e.g. "03-04"}."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Where is what", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d\d(?:-\d\d)?) \| (.+?) \|$", section, re.M)
    return {m: lesson for lesson, cell in rows for m in re.findall(r"`(\w+)`", cell)}


def top_level_modules() -> set[str]:
    return {p.stem for p in (ROOT / "shared").glob("*.py")} - {"__init__", "__main__"}


def test_the_top_of_shared_holds_only_the_lesson_components_the_readme_lists():
    listed = readme_lessons()
    assert len(listed) >= 13, listed  # the table was found and read
    assert top_level_modules() == set(listed), (
        "shared/*.py must be the README's lesson components: move machinery into a sub-package "
        "(engine, lesson_tools, course, grading) or add the component to the lesson table"
    )


def test_each_lesson_component_opens_with_its_lesson():
    for module, lesson in readme_lessons().items():
        doc = importlib.import_module(f"shared.{module}").__doc__ or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        named = re.findall(r"[Ll]essons? (\d\d)", first)
        assert lesson[:2] in named, (
            f"shared/{module}.py's first docstring line names no lesson {lesson}"
        )


def test_every_reference_module_is_under_the_contract():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    reference = {f"shared.{m}" for m in top_level_modules()}
    assert set(contracts[0]["source_modules"]) == reference | {"shared.checks"}
    machinery = {"shared.lesson_tools", "shared.course", "shared.grading"}
    assert machinery <= set(contracts[0]["forbidden_modules"])
    assert contracts[1]["source_modules"] == ["shared.engine"]
    assert machinery <= set(contracts[1]["forbidden_modules"])
    packages = {p.parent.name for p in (ROOT / "shared").glob("*/__init__.py")}
    assert set(config["tool"]["setuptools"]["packages"]) == {"shared"} | {
        f"shared.{p}" for p in packages
    }
