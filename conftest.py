"""Test-wide settings: quick mode for every notebook kernel nbval starts (they inherit os.environ)."""

import atexit
import os
import shutil
import tempfile

# Shrinks long notebook cells (training) so the suite runs in minutes; GPT_COURSE_QUICK=0 overrides.
os.environ.setdefault("GPT_COURSE_QUICK", "1")
# Notebooks must never open windows under test.
os.environ.setdefault("MPLBACKEND", "Agg")

# Lessons and commands under test save checkpoints and outputs in a scratch folder, never in the
# learner's checkpoints/ and outputs/ (shared.engine.config reads these two variables).
_SCRATCH = tempfile.mkdtemp(prefix="gpt-course-tests-")
os.environ.setdefault("GPT_COURSE_CHECKPOINT_DIR", os.path.join(_SCRATCH, "checkpoints"))
os.environ.setdefault("GPT_COURSE_OUTPUTS_DIR", os.path.join(_SCRATCH, "outputs"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
