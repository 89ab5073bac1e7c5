"""The training engine: what ``shared.train`` and the other lesson components stand on.

Threads (``threads``), progress and the run's report (``progress``, ``train_report``), the
bookkeeping of a run (``train_run``: resume, save, the agreed stop), its guards (``train_guards``)
and recipes (``train_config``), several processes (``distributed``), checkpoint files
(``checkpoint``, ``convert``, ``tempfiles``), the book's download (``download``), settings
(``config``) and the one error type the CLI prints as one line (``errors``).

It never imports ``shared.course``, ``shared.grading`` or ``shared.lesson_tools``
(import-linter contracts in pyproject.toml).
"""
