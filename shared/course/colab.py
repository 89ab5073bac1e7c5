"""Colab: the "Open in Colab" badge and first cell every lesson starts with, once published.

The repository's address lives in one place, ``[project.urls] Repository`` in pyproject.toml
(``repository_url()`` reads it). Until it is a real GitHub address the lesson generator adds
neither the badge nor the cell: a badge pointing nowhere is a 404 for every learner who clicks.

In Colab the first cell clones the course, installs it (``pip install --no-deps -e``: Colab
already has every library the lessons use) and reports the GPU; on your own machine it does nothing. The cell cannot import ``shared`` (in Colab the
course is not there yet), so ``setup_cell`` returns self-contained source, run as it stands.

    repository_url(root)                          # the address, or None before publication
    badge_markdown("lessons/06_train.ipynb", url)  # the Markdown of the lesson's badge
    setup_cell(url)                                # the source of the lesson's first code cell
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# https://github.com/<owner>/<name>: GitHub's own rules for both names
_GITHUB_REPO = re.compile(
    r"https://github\.com/(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/[A-Za-z0-9._-]{1,100}/?"
)
_PLACEHOLDER_OWNERS = {"owner", "user", "username", "someone", "you", "your-name", "example"}


def is_real_repo_url(url: str | None) -> bool:
    """True for a GitHub repository address whose owner is not a placeholder."""
    match = _GITHUB_REPO.fullmatch(url or "")
    return bool(match) and match.group("owner").lower() not in _PLACEHOLDER_OWNERS


def repository_url(root: Path) -> str | None:
    """``[project.urls] Repository`` of ``root/pyproject.toml`` when it is a real GitHub address,
    else None (not set yet, or a placeholder)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = None
    text = (Path(root) / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is not None:
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    else:
        table = re.search(r"^\[project\.urls\]\s*$(?P<body>.*?)(?=^\[|\Z)", text, re.M | re.S)
        line = table and re.search(r'^Repository\s*=\s*"([^"]*)"', table.group("body"), re.M)
        url = line.group(1) if line else None
    url = url.rstrip("/") if isinstance(url, str) else None
    return url if is_real_repo_url(url) else None


def colab_url(notebook: str, repo_url: str, branch: str = BRANCH) -> str:
    """Colab's address for ``notebook`` (a path inside the repository) on GitHub."""
    repo = repo_url.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}"


def badge_markdown(notebook: str, repo_url: str, branch: str = BRANCH) -> str:
    """``[![Open In Colab](badge.svg)](colab url)`` for a lesson, e.g. ``lessons/01_data.ipynb``."""
    notebook = PurePosixPath(notebook).as_posix()
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, repo_url, branch)})"


def setup_cell(repo_url: str) -> str:
    """The first code cell of every published lesson: self-contained, it runs as it stands."""
    return f'''\
# Colab only: install the course and use its GPU. On your own machine this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL = "{repo_url}"
    HOME = "/content/gpt-quijote-course"
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth", "1", "--quiet", REPO_URL, HOME], check=True)
    # --no-deps: Colab already has torch, numpy, matplotlib, requests, tqdm; leave its versions be
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", HOME]
    subprocess.run(pip, check=True)
    sys.path.insert(0, HOME)  # this kernel started before the install: let it see the course
    os.chdir(os.path.join(HOME, "lessons"))  # data/ and checkpoints/ live in the clone

    import torch

    if torch.cuda.is_available():  # device="auto" (the default everywhere) then picks it
        print("Course installed; GPU:", torch.cuda.get_device_name(0))
    else:
        print("Course installed; no GPU: Runtime > Change runtime type > T4 GPU makes "
              "training faster (then run this cell again)")
'''
