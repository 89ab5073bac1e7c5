"""The package's two layers stay apart, and nothing in ``shared`` imports in a circle."""

import grimp
from importlinter.cli import lint_imports

import shared


def test_import_linter_contracts_are_kept():
    # Reads [tool.importlinter] from pyproject.toml: the reference layer never imports
    # shared.course, argparse, subprocess or the notebook machinery.
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


def test_every_reference_module_is_under_the_contract():
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
        import tomli as tomllib

    root = Path(shared.__file__).parent
    config = tomllib.loads((root.parent / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    reference = {
        f"shared.{p.stem}" for p in root.glob("*.py") if p.stem not in {"__init__", "__main__"}
    }
    assert set(contract["source_modules"]) == reference | {"shared.checks"}
