"""The Colab cell: does nothing on a local machine; in Colab it clones, installs, and moves in."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from shared.course.colab import REPO_URL, SETUP_CELL, badge_markdown, colab_url, setup_cell


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
    run_cell(SETUP_CELL)
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
    badge = badge_markdown(notebook)
    assert badge.startswith("[![Open In Colab](https://colab.research.google.com/assets/")
    assert badge.endswith(f"({colab_url(notebook)})")
    assert colab_url(notebook, "https://github.com/a/b") == (
        f"https://colab.research.google.com/github/a/b/blob/main/{notebook}"
    )
    assert REPO_URL in SETUP_CELL
