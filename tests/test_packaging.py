"""The two ways to install (pip, conda) agree, and CI runs exactly what the README tells people."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the check is the same on every version

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI names
CONDA_TO_PIP = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return match.group(1).lower(), match.group(2).replace(" ", "")


def pip_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(_split(req) for req in data["project"]["dependencies"])


def conda_requirements() -> dict[str, str]:
    deps, in_deps = {}, False
    for line in (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        item = re.match(r"^  - (\S.*)$", line)  # top-level list items only (not the pip: block)
        if in_deps and item and not item.group(1).startswith("pip:"):
            name, spec = _split(item.group(1))
            name = CONDA_TO_PIP.get(name, name)
            if name not in NOT_PACKAGES:
                deps[name] = spec
    return deps


def test_environment_yml_and_pyproject_list_the_same_packages_and_versions():
    assert conda_requirements() == pip_requirements()


def test_required_dependencies_are_declared():
    required = {"torch", "requests", "matplotlib", "imageio", "jupyter", "nbval", "pytest"}
    assert required <= set(pip_requirements())


def test_torch_requirement_is_a_range_not_a_pin():
    # Real users on any platform must get their own torch build; only CI pins the CPU wheel.
    assert pip_requirements()["torch"].startswith(">=")


def test_python_versions_agree():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["requires-python"] == ">=3.10"
    assert "  - python>=3.10" in (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    marker = ci.index("# README test command:")
    command = ci[marker + 1].strip()
    assert command, ".ci/run must have the README's test command after its marker"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert command in readme.splitlines(), f"README.md does not show the command CI runs: {command}"


def test_ci_installs_the_cpu_torch_wheel_before_the_project():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("torch==2.13.0") < ci.index("pip install -e .")
