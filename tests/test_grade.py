"""Grading a hostile class, with real bubblewrap sandboxes and kernels.

A fake course (``tests/gradefake.py``: checks and a reference implementation written to a temp
folder) stands in for ``shared.checks``. One module-scoped fixture grades a class once with
``--jobs 2``: honest solved and stub notebooks at both ends of the alphabet, and one student
per trick from issue #14. The tests read that gradebook and look at the machine afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shared.grading.extract as extract
import shared.grading.grade as grade
import shared.grading.kernel as kernel
from shared.__main__ import main
from shared.grading.gradebook import format_grid, markdown_summary, write_csv, write_markdown
from tests.gradefake import CHECKS, GREET, REFERENCE, SOLVED, STUB, STUB_DEFS, write_notebook

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (bwrap): .ci/run installs it"
)

SECRET = "s3cret-grader-value-8841"
TOKEN = "31337.25"  # `sleep 31337.25`: background processes students try to leave behind
PRIVATE = "PRIVATE FIRST LINE of the instructor's file"

TRICKS = {
    # --- tricks inside the learner's kernel: the grade never comes from the kernel
    "json": [
        *STUB_DEFS,
        "import json\njson.dumps = lambda *a, **k: '{\"status\": \"pass\"}'\nprint('PASSED double')",
    ],
    "exec": [*STUB_DEFS, "exec = lambda *a, **k: None\nprint = lambda *a, **k: None"],
    "stdout": [
        *STUB_DEFS,
        "import sys\nclass W:\n    def __init__(self, s):\n        self.s = s\n"
        "    def write(self, t):\n        return self.s.write(t.replace('FAIL', 'PASS'))\n"
        "    def flush(self):\n        self.s.flush()\nsys.stdout = W(sys.stdout)",
    ],
    "hook": [
        *STUB_DEFS,
        "get_ipython().events.register('post_run_cell', lambda *a: print('PASSED double'))",
    ],
    # --- thin wrappers around the reference: they fail or are flagged
    "wrap": [
        "def double(x):\n    import importlib\n"
        "    return importlib.import_module('gradefake_' + 'ref').double(x)",
        "import types, gradefake_ref\n\ndef triple(x):\n"
        "    return types.FunctionType(gradefake_ref.triple.__code__, {})(x)",
        "from gradefake_ref import Book as Base\n\nclass Book(Base):\n    pass",
    ],
    "alias": [
        "from gradefake_ref import double as twice\n\ndef double(x):\n    return twice(x)",
        "import gradefake_ref\n\ndef triple(x):\n    ns = {}\n"
        "    exec(open(gradefake_ref.__file__).read(), ns)\n    return ns['triple'](x)",
        "import gradefake_ref as g\n\nclass Book(g.Book):\n    pass",
    ],
    "forge": [  # writes a fake result on every descriptor of the checker, then exits 0
        "import os\n\ndef double(x):\n    for fd in range(3, 1024):\n        try:\n"
        '            os.write(fd, b\'{"status": "pass", "message": ""}\\n\')\n'
        "        except OSError:\n            pass\n    os._exit(0)",
        STUB[3],
        STUB[4],
    ],
    # --- abuse of the machine: it stays inside the student's own sandbox
    "vandal": [
        *SOLVED,
        "import os, signal, subprocess\n"
        f"subprocess.Popen(['sleep', '{TOKEN}'], start_new_session=True)\n"
        "for path in PATHS:\n    try:\n        open(path, 'a').write('vandal')\n"
        "    except OSError as exc:\n        print(path, exc)\n"
        "peers = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "os.kill(os.getppid(), signal.SIGINT)\nos.kill(os.getppid(), signal.SIGKILL)",
        "def triple(x):\n    import subprocess\n"
        f"    subprocess.Popen(['sleep', '{TOKEN}'], start_new_session=True)\n    return 3 * x",
    ],
    "secret": [
        "import os\n\ndef double(x):\n"
        "    raise ValueError(os.environ.get('GRADER_SECRET', 'no secret here'))",
        STUB[3],
        STUB[4],
    ],
    "syntax": ["def double(x)\n    return 2 * x", STUB[3], STUB[4]],
    "hang": [
        "def double(x):\n    while True:\n        pass",
        "import time\nwhile True:\n    time.sleep(0.1)",
        *SOLVED[3:],
    ],
    "crash": [*SOLVED, "import os\nos._exit(1)"],
    "slow": [*SOLVED, *["import time\ntime.sleep(3)"] * 12],  # each cell in time, not in all
    "computed": [
        "vocab = sorted(set('hola'))\n\ndef double(x):\n    return 2 * x * len(vocab) // 3",
        *SOLVED[3:],
    ],
}


# One student's notebooks share a sandbox (one after another): notebook 01 leaves files and a
# process behind and tries to kill the sandbox's PID 1; notebook 02's definition looks for them.
LEAK = "4242.5"
PLANTED = [
    "/sandbox/checkpoints/planted.pt",
    "/sandbox/home/planted",
    "/tmp/planted",
    "/sandbox/work/x",
]
LEAKER = [
    *SOLVED,
    "import os, signal, subprocess\n"
    "for path in %r:\n"
    "    os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "    open(path, 'w').write('left behind')\n"
    f"subprocess.Popen(['sleep', '{LEAK}'], start_new_session=True)\n"
    "for pid in (1, os.getppid()):\n"
    "    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):\n"
    "        try:\n            os.kill(pid, sig)\n        except OSError:\n            pass"
    % PLANTED,
]
FINDER = [
    "def greet(name):\n    import os\n"
    "    found = [p for p in %r if os.path.exists(p)]\n"
    "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "        try:\n"
    f"            if b'{LEAK}' in open(f'/proc/{{pid}}/cmdline', 'rb').read():\n"
    "                found.append(pid)\n"
    "        except OSError:\n            pass\n"
    "    return 'Hola, ' + name if not found else 'found ' + ' '.join(found)" % PLANTED,
]


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path).encode("utf-8", "surrogateescape"))
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def leftover_processes() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if TOKEN.encode() in cmdline or LEAK.encode() in cmdline:
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def fake_course(tmp_path_factory):
    helpers = tmp_path_factory.mktemp("helpers")
    data = tmp_path_factory.mktemp("data")
    (data / "corpus.txt").write_text("Hola", encoding="utf-8")
    (helpers / "gradefake_checks.py").write_text(CHECKS, encoding="utf-8")
    (helpers / "gradefake_ref.py").write_text(REFERENCE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(helpers))
        mp.setenv("GPT_COURSE_DATA_DIR", str(data))
        mp.setenv("GRADER_SECRET", SECRET)
        mp.setattr(grade, "CHECKS_MODULE", "gradefake_checks")
        mp.setattr(extract, "REFERENCE_PACKAGES", ["shared", "gradefake_ref"])
        mp.setattr(kernel, "STUCK_GRACE_S", 1)
        import gradefake_checks

        yield gradefake_checks, helpers, data


@pytest.fixture(scope="module")
def graded(fake_course, tmp_path_factory):
    checks, helpers, data = fake_course
    root = tmp_path_factory.mktemp("submissions")
    home = tmp_path_factory.mktemp("instructor")
    canary = home / "notes.txt"
    canary.write_text(PRIVATE + "\n", encoding="utf-8")
    for name, notebook in [("Aaron", SOLVED), ("aab_stub", STUB), ("zz_solved", SOLVED)]:
        write_notebook(root / name / "01_fake.ipynb", notebook)
    write_notebook(root / "zzz_stub" / "01_fake.ipynb", STUB)
    write_notebook(root / "Aaron" / "02_other.ipynb", GREET)
    write_notebook(root / ".hidden" / "01_fake.ipynb", SOLVED)
    write_notebook(root / "_under" / "02_other.ipynb", GREET)
    odd = os.fsdecode(b"caf\xe9")  # not UTF-8
    write_notebook(root / odd / "01_fake.ipynb", SOLVED)
    paths = [
        str(p) for p in [canary, helpers / "gradefake_checks.py", root / "Aaron" / "01_fake.ipynb"]
    ]
    paths += [grade.__file__, "/tmp/planted.py"]
    for name, cells in TRICKS.items():
        cells = [c.replace("PATHS", repr(paths)) for c in cells]
        write_notebook(root / name / "01_fake.ipynb", cells)
    write_notebook(root / "leaker" / "01_fake.ipynb", LEAKER)
    write_notebook(root / "leaker" / "02_other.ipynb", FINDER)
    (root / "linky").mkdir()
    (root / "linky" / "01_fake.ipynb").symlink_to(canary)
    (root / "mirror").symlink_to(root / "Aaron")
    (root / "README.txt").write_text("instructions", encoding="utf-8")
    before = {p: tree_hash(p) for p in (helpers, data, Path(grade.__file__).parent, root)}
    book = grade.grade_class(root, checks.EXERCISES, timeout=4, total=30, jobs=2)
    after = {p: tree_hash(p) for p in before}
    out = tmp_path_factory.mktemp("out") / "gradebook.csv"
    write_csv(book, out)
    write_markdown(book, out.with_suffix(".md"))
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    csv_text = out.read_text(encoding="utf-8")
    return dict(book=book, rows=rows, md=markdown, csv=csv_text, before=before, after=after)


def result(rows, student, exercise, lesson="01_fake"):
    (row,) = [
        r for r in rows if (r["student"], r["lesson"], r["exercise"]) == (student, lesson, exercise)
    ]
    return row["status"], row["message"]


def test_honest_students_at_both_ends_of_the_alphabet(graded):
    rows = graded["rows"]
    for student in ("Aaron", "zz_solved", ".hidden", "caf\\xe9"):
        for exercise in ("double", "triple", "book", "quad"):
            assert result(rows, student, exercise)[0] == "pass", (student, exercise)
    for student in ("aab_stub", "zzz_stub"):
        assert result(rows, student, "double") == ("fail", "[double] not implemented yet")
        status, message = result(rows, student, "triple")
        assert status == "fail" and "should be 9, got 6" in message
        assert result(rows, student, "book")[0] == "fail"
        assert result(rows, student, "quad")[0] == "fail"
    assert result(rows, "Aaron", "greet", "02_other") == ("pass", "PASSED greet")
    assert result(rows, "_under", "greet", "02_other")[0] == "pass"


def test_every_folder_gets_a_row_or_a_note(graded):
    book = graded["book"]
    expected = {"Aaron", "aab_stub", "zz_solved", "zzz_stub", ".hidden", "_under", "caf\\xe9"}
    assert expected | set(TRICKS) | {"linky", "leaker"} == set(book.students)
    assert any("mirror" in n and "symbolic link" in n for n in book.notes)
    assert any("README.txt" in n for n in book.notes)
    status, message = result(graded["rows"], "linky", "double")
    assert status == "error" and "symbolic link" in message


@pytest.mark.parametrize("student", ["json", "exec", "stdout", "hook"])
def test_tricks_in_the_kernel_do_not_reach_the_grade(graded, student):
    for exercise in ("double", "triple", "book"):
        assert result(graded["rows"], student, exercise)[0] == "fail"


def test_thin_wrappers_around_the_reference_fail_or_are_flagged(graded):
    rows, book = graded["rows"], graded["book"]
    reference = "uses the reference implementation"
    for student, exercise in [("wrap", "book"), ("alias", "double"), ("alias", "book")]:
        status, message = result(rows, student, exercise)
        assert status == "fail" and reference in message, (student, exercise, message)
    flags = " ".join(book.reports["wrap", "01_fake"].flags)
    assert "importlib" in flags and "types" in flags and ".__code__" in flags
    flags = " ".join(book.reports["alias", "01_fake"].flags)
    assert "exec" in flags and "open" in flags
    assert book.reports["Aaron", "01_fake"].flags == []


def test_a_forged_result_is_rejected_and_flagged(graded):
    status, message = result(graded["rows"], "forge", "double")
    assert status == "fail" and "no result from the checker" in message  # #23: forging fails
    assert "os" in " ".join(graded["book"].reports["forge", "01_fake"].flags)


def test_vandalism_stays_in_the_sandbox(graded):
    assert graded["before"] == graded["after"]  # course, checks, data, submissions
    assert not Path("/tmp/planted.py").exists()
    assert leftover_processes() == []
    # the notebook killed what it could and still got its (honest) grade, alone
    for exercise in ("double", "triple", "book"):
        assert result(graded["rows"], "vandal", exercise)[0] == "pass"


def test_a_notebook_leaves_nothing_for_the_next_one_in_the_students_sandbox(graded):
    rows = graded["rows"]
    for exercise in ("double", "triple", "book"):
        assert result(rows, "leaker", exercise)[0] == "pass"
    assert result(rows, "leaker", "greet", "02_other") == ("pass", "PASSED greet")
    assert graded["book"].reports["leaker", "02_other"].notes == []


def test_nothing_private_in_the_shared_markdown(graded):
    for text in (graded["md"], graded["csv"]):
        assert SECRET not in text and PRIVATE not in text
    status, message = result(graded["rows"], "secret", "double")
    assert status == "fail" and "no secret here" in message  # the sandbox has no such variable


def test_syntax_error_is_reported_as_such(graded):
    status, message = result(graded["rows"], "syntax", "double")
    assert status == "fail" and "syntax error in cell 1" in message
    assert "reference" not in message


def test_hangs_time_out_and_the_rest_is_graded(graded):
    rows, book = graded["rows"], graded["book"]
    assert result(rows, "hang", "double") == ("timeout", "the check did not finish in 4 s")
    assert result(rows, "hang", "triple")[0] == "pass"
    assert any("cell 2 did not finish" in n for n in book.reports["hang", "01_fake"].notes)
    notes = " ".join(book.reports["slow", "01_fake"].notes)
    assert "total time limit (30 s)" in notes
    assert result(rows, "slow", "book")[0] == "pass"


def test_a_dead_kernel_is_a_note_not_a_grade(graded):
    notes = " ".join(graded["book"].reports["crash", "01_fake"].notes)
    assert "kernel died" in notes
    assert result(graded["rows"], "crash", "double")[0] == "pass"


def test_a_variable_from_another_cell_gets_a_hint(graded):
    status, message = result(graded["rows"], "computed", "double")
    assert status == "fail" and "`vocab` is computed in another cell" in message


def test_optional_exercises_are_listed_but_not_counted(graded):
    book = graded["book"]
    assert book.cell("Aaron", "01_fake") == "3/3 +1 opt"
    assert book.total("Aaron") == "4/4"
    grid = format_grid(book)
    assert "not counted in the totals" in grid
    assert "| Aaron | 3/3 +1 opt | 1/1 | 4/4 |" in markdown_summary(book)
    assert "optional (stretch)" in graded["md"]


# ----------------------------------------------------------------------------------- CLI


def test_check_cli_exit_codes(fake_course, tmp_path, capsys):
    solved, stub = tmp_path / "a" / "01_fake.ipynb", tmp_path / "b" / "01_fake.ipynb"
    write_notebook(solved, SOLVED)
    write_notebook(stub, STUB)
    assert main(["check", str(solved), "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "PASS    double" in out and "PASS    quad (optional)" in out
    assert "3/3 required exercises pass" in out
    assert main(["check", str(stub.parent), "--timeout", "20"]) == 1
    out = capsys.readouterr().out
    assert "FAIL    double: not implemented yet" in out
    assert "FAIL    triple: triple(3) should be 9, got 6" in out
    assert "note:" not in out  # its failing check cell is already in the results
    assert main(["check", str(solved), "--timeout", "20", "--no-sandbox"]) == 0
    out = capsys.readouterr().out
    assert "runs unconfined" in out and "3/3 required exercises pass" in out


def test_grade_cli_checks_its_arguments_before_grading(fake_course, tmp_path, capsys):
    root = tmp_path / "subs"
    write_notebook(root / "zoe" / "01_fake.ipynb", STUB)
    assert main(["grade", str(root), "--out", str(root / "book.csv")]) == 2
    assert "inside the submissions folder" in capsys.readouterr().err
    assert main(["grade", str(root), "--out", str(tmp_path / "book.md")]) == 2
    assert "must name a .csv" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "absent"), "--out", str(tmp_path / "b.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", str(root), "--timeout", "0"]) == 2
    assert "--timeout: must be > 0" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*.md"))


def test_ctrl_c_stops_cleanly_with_a_partial_gradebook(fake_course, tmp_path):
    _, helpers, _ = fake_course
    root, out = tmp_path / "subs", tmp_path / "grades" / "book.csv"
    write_notebook(root / "ana" / "01_fake.ipynb", ["import time\ntime.sleep(600)"])
    write_notebook(root / "ben" / "01_fake.ipynb", SOLVED)
    program = (
        "import sys; import shared.grading.grade as g; g.CHECKS_MODULE = 'gradefake_checks'\n"
        "from shared.__main__ import main\n"
        f"sys.exit(main(['grade', {str(root)!r}, '--out', {str(out)!r}, '--jobs', '1']))"
    )
    scratch = tmp_path / "tmp"  # the grader's temporary folders: named in every sandbox
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(helpers), *sys.path])}
    env["TMPDIR"] = str(scratch)
    grader = subprocess.Popen([sys.executable, "-c", program], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not children(grader.pid):
        time.sleep(0.5)
    time.sleep(3)  # the kernel is up and running `time.sleep(600)`
    grader.send_signal(signal.SIGINT)
    stdout, _ = grader.communicate(timeout=60)
    assert grader.returncode == 130, stdout + _
    assert "interrupted" in stdout
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert {r["status"] for r in rows if r["student"] == "ana" and r["lesson"] == "01_fake"} == {
        "error"
    }
    assert "Grading was interrupted" in out.with_suffix(".md").read_text(encoding="utf-8")
    time.sleep(1)
    assert sandboxes(scratch, b"bwrap") == []


def children(pid: int) -> list[str]:
    """Processes whose parent is ``pid``: the grader's sandboxes (bwrap)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(entry)
    return found


def sandboxes(scratch: Path, word: bytes) -> list[str]:
    """Processes of this grader's sandboxes: their command line names its scratch folder."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if str(scratch).encode() in cmdline and word in cmdline:
            found.append(entry)
    return found


# ------------------------------------------------------------------------- the real course


def test_real_lessons_solutions_pass_and_stubs_fail_in_the_sandbox(tmp_path):
    """The checker's namespace holds what honest solutions need (e.g. the reference Head
    under MultiHeadAttention); the generated lesson's stub fails with the hint."""
    from shared.checks import EXERCISES

    root = Path(__file__).resolve().parent.parent
    subs = tmp_path / "subs"
    for student, folder in [("ana", "solutions"), ("ben", "lessons")]:
        (subs / student).mkdir(parents=True)
        for lesson in ("03_self_attention", "04_multihead"):
            shutil.copy(root / folder / f"{lesson}.ipynb", subs / student)
    registry = {lesson: EXERCISES[lesson] for lesson in ("03_self_attention", "04_multihead")}
    book = grade.grade_class(
        subs, registry, checks_module="shared.checks", timeout=60, jobs=2, run_notebook=False
    )
    for (student, _), report in book.reports.items():
        for r in report.results:
            expected = "pass" if student == "ana" else "fail"
            assert r.status == expected, (student, r)
            if student == "ben":
                assert "not implemented yet" in r.message


def test_a_rerun_regrades_only_what_changed(fake_course, tmp_path):
    checks, _, _ = fake_course
    root, cache = tmp_path / "subs", tmp_path / "out" / "book.cache.json"
    cache.parent.mkdir()
    write_notebook(root / "ana" / "01_fake.ipynb", SOLVED)
    write_notebook(root / "bob" / "01_fake.ipynb", STUB)
    first = grade.grade_class(root, checks.EXERCISES, timeout=10, cache=cache, run_notebook=False)
    again = grade.grade_class(root, checks.EXERCISES, timeout=10, cache=cache, run_notebook=False)
    assert any("2 unchanged notebooks" in note for note in again.notes)
    assert again.rows() == first.rows()
    write_notebook(root / "bob" / "01_fake.ipynb", SOLVED)  # bob finishes his work
    third = grade.grade_class(root, checks.EXERCISES, timeout=10, cache=cache, run_notebook=False)
    assert any("1 unchanged notebooks" in note for note in third.notes)
    assert third.total("bob") == third.total("ana") == "3/4"  # 02_other is missing


def test_grading_into_a_log_writes_plain_lines_not_redraws(
    fake_course, tmp_path, capfd, monkeypatch
):
    import shared.engine.progress

    checks, _, _ = fake_course
    root = tmp_path / "subs"
    for student in ("ana", "bob"):
        write_notebook(root / student / "01_fake.ipynb", SOLVED)
    original = shared.engine.progress.Progress.__init__

    def every_update(self, *args, **kwargs):  # a line per notebook instead of every ~15 s
        original(self, *args, **{**kwargs, "every": 0.0})

    monkeypatch.setattr(shared.engine.progress.Progress, "__init__", every_update)
    grade.grade_class(root, checks.EXERCISES, timeout=10, run_notebook=False, progress=True)
    err = capfd.readouterr().err
    assert "\r" not in err and "grading: 2/2 notebooks" in err
