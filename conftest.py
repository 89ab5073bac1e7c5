"""Test-wide settings: quick mode for every notebook kernel nbval starts (they inherit os.environ)."""

import os

# Shrinks long notebook cells (training) so the suite runs in minutes; GPT_COURSE_QUICK=0 overrides.
os.environ.setdefault("GPT_COURSE_QUICK", "1")
# Notebooks must never open windows under test.
os.environ.setdefault("MPLBACKEND", "Agg")
