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
