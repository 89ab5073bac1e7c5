"""``python -m shared <command> ...``: the course pipeline without Jupyter (see shared.course.cli)."""

import sys

from shared.course.cli import main

if __name__ == "__main__":
    sys.exit(main())
