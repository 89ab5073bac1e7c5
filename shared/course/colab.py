"""Colab: the "Open in Colab" badge and first cell every lesson starts with.

In Colab the first cell clones the course, installs it (``pip install --no-deps -e``: Colab
already has every library the lessons use) and reports the GPU; on your own machine it does nothing. The cell cannot import ``shared`` (in Colab the
course is not there yet), so ``SETUP_CELL`` is self-contained source, run as it stands.

    badge_markdown("lessons/06_train.ipynb")   # the Markdown of the lesson's badge
    SETUP_CELL                                  # the source of the lesson's first code cell
"""

from __future__ import annotations

from pathlib import PurePosixPath

# PLACEHOLDER: the course's public GitHub repository is not known yet. Replace OWNER (here and
# nowhere else: the badge and the setup cell are built from it), then regenerate the lessons.
REPO_URL = "https://github.com/OWNER/gpt-quijote-course"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """Colab's address for ``notebook`` (a path inside the repository) on GitHub."""
    repo = repo_url.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}"


def badge_markdown(notebook: str, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """``[![Open In Colab](badge.svg)](colab url)`` for a lesson, e.g. ``lessons/01_data.ipynb``."""
    notebook = PurePosixPath(notebook).as_posix()
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, repo_url, branch)})"


def setup_cell(repo_url: str = REPO_URL) -> str:
    """The first code cell of every lesson (see ``SETUP_CELL``)."""
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


SETUP_CELL = setup_cell()
