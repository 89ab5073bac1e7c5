"""The Colab cell: does nothing on a local machine; in Colab it clones, installs, and moves in."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from shared.course.colab import (
    badge_markdown,
    colab_url,
    is_real_repo_url,
    repository_url,
    setup_cell,
)

URL = "https://github.com/course-author/gpt-quijote-course"


def run_cell(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<colab cell>", "exec"), namespace)
    return namespace


def test_locally_the_cell_does_nothing(monkeypatch, capsys):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"the cell ran a command locally: {args}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(os, "chdir", forbidden)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cwd, path = os.getcwd(), list(sys.path)
    run_cell(setup_cell(URL))
    assert os.getcwd() == cwd and sys.path == path
    assert capsys.readouterr() == ("", "")


def test_in_colab_the_cell_clones_installs_and_enters_the_lessons(monkeypatch, capsys):
    commands, moves = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: commands.append(cmd))
    monkeypatch.setattr(os, "chdir", moves.append)
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    run_cell(setup_cell("https://github.com/someone/course"))
    clone, install = commands
    assert clone[:2] == ["git", "clone"] and "https://github.com/someone/course" in clone
    assert install[1:] == ["-m", "pip", "install", "--quiet", "--no-deps", "-e", clone[-1]]
    assert moves == [os.path.join(clone[-1], "lessons")] and sys.path[0] == clone[-1]
    assert "Course installed" in capsys.readouterr().out


@pytest.mark.parametrize("notebook", ["lessons/01_data.ipynb", "lessons/06_train.ipynb"])
def test_the_badge_opens_the_lesson_in_colab(notebook):
    badge = badge_markdown(notebook, URL)
    assert badge.startswith("[![Open In Colab](https://colab.research.google.com/assets/")
    assert badge.endswith(f"({colab_url(notebook, URL)})")
    assert colab_url(notebook, "https://github.com/a/b") == (
        f"https://colab.research.google.com/github/a/b/blob/main/{notebook}"
    )
    assert URL in setup_cell(URL)


def write_pyproject(tmp_path, urls_table):
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n{urls_table}\n[tool.x]\nRepository = "https://github.com/a/b"\n',
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.parametrize(
    "table, expected",
    [
        (f'[project.urls]\nRepository = "{URL}"\n', URL),
        (f'[project.urls]\nRepository = "{URL}/"\n', URL),
        ('[project.urls]\n# Repository = "https://github.com/x/y"\n', None),  # not set yet
        ("", None),  # no table at all (the Repository key under [tool.x] is not it)
        ('[project.urls]\nRepository = "https://github.com/OWNER/gpt-quijote-course"\n', None),
        ('[project.urls]\nRepository = "https://github.com/someone/gpt-quijote-course"\n', None),
        ('[project.urls]\nRepository = "https://gitlab.com/a/b"\n', None),
        ('[project.urls]\nRepository = "github.com/a/b"\n', None),
    ],
)
def test_the_repository_url_comes_from_pyproject_and_must_be_real(tmp_path, table, expected):
    assert repository_url(write_pyproject(tmp_path, table)) == expected


def test_the_python_310_reader_agrees_with_tomllib(tmp_path, monkeypatch):
    root = write_pyproject(tmp_path, f'[project.urls]\nRepository = "{URL}"\n')
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` fails, as on 3.10
    assert repository_url(root) == URL
    root = write_pyproject(tmp_path, "[project.urls]\n")
    assert repository_url(root) is None


def test_placeholders_are_not_real_urls():
    assert is_real_repo_url(URL)
    assert not is_real_repo_url("https://github.com/OWNER/x")
    assert not is_real_repo_url(None)
