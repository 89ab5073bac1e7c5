"""Grading: ``python -m shared check`` and ``python -m shared grade``.

The notebooks run in a sandbox (``sandbox``, ``student_sandbox``, ``zygote``, ``worker``,
``kernel``, ``selfcheck``); each definition is checked by the judge (``checker``, ``judge``)
through a data-only channel (``remote``, ``remote_proxy``, ``remote_values``); the results
become a gradebook and its exports (``grade``, ``gradebook``, ``gradecache``, ``feedback``,
``lms``, ``reports``, ``similarity``, ``submissions``, ``extract``).

Only the command line (``shared.course``) imports it; the reference and the engine never do.
"""
