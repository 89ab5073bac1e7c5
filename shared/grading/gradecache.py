"""Re-grade only what changed: notebook reports cached by content.

``python -m shared grade`` keeps ``<out>.cache.json`` next to the gradebook (outside the
submissions and never inside a sandbox, so no student code can write it). A report is reused
when the same notebook bytes are graded again for the same lesson and exercises, with the same
options that can change a result (time limits, ``--no-run``) and the same installed course
(``package_fingerprint``: new checks mean new grades). Results that depend on the machine
(``error``, ``timeout``) are never cached, so they are tried again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from shared.grading.selfcheck import ExerciseResult, NotebookReport

VERSION = 1


class ReportCache:
    def __init__(self, path: Path | None, salt: str):
        self.path, self.salt = path, salt
        self.entries: dict[str, dict] = {}
        self.hits = 0
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("version") == VERSION and isinstance(data.get("reports"), dict):
                    self.entries = data["reports"]
            except (OSError, ValueError, AttributeError):
                self.entries = {}  # a damaged cache is no cache

    def key(self, path: Path, lesson: str, exercises) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as handle:
                content = handle.read()
        except OSError:
            return None
        digest = hashlib.sha256()
        digest.update(json.dumps([self.salt, lesson, [asdict(e) for e in exercises]]).encode())
        digest.update(content)
        return digest.hexdigest()

    def get(self, key: str | None, path: Path) -> NotebookReport | None:
        entry = self.entries.get(key) if key else None
        if not isinstance(entry, dict):
            return None
        try:
            results = [ExerciseResult(**r) for r in entry["results"]]
            report = NotebookReport(entry["lesson"], str(path), results, list(entry["notes"]),
                                    list(entry["flags"]))  # fmt: skip
        except (KeyError, TypeError):
            return None
        self.hits += 1
        return report

    def put(self, key: str | None, report: NotebookReport) -> None:
        if key and all(r.status not in ("error", "timeout") for r in report.results):
            entry = asdict(report)
            entry.pop("path", None)
            self.entries[key] = entry

    def save(self, keep: set[str]) -> None:
        """Write the entries of this run (``keep``) atomically; old notebooks drop out."""
        if self.path is None:
            return
        data = {"version": VERSION, "reports": {k: v for k, v in self.entries.items() if k in keep}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cache-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
