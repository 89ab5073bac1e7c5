"""Issue #23: the verdict is computed in a process that never ran student code.

A small class on the real lesson 03 (``attention_weights``), graded with real sandboxes: honest
students (our solution, a differently written correct one, the stub) and students who return a
wrong answer and then try to turn it into a pass from inside their own process, each kind in a
few variants: walking up the call stack (several standard-library routes) to forge or silence
the result, replacing the torch functions a check compares with, and calling the reference
through every import form. Every attack must FAIL on its own merits (no review flag needed);
honest students keep their grades.
"""

from __future__ import annotations

import shutil

import pytest

import shared.grading.grade as grade
from tests.gradefake import write_notebook

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (bwrap): .ci/run installs it"
)

IMPORTS = "import math\nimport torch\nimport torch.nn as nn\nfrom torch.nn import functional as F"
WRONG = "    return torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2])"  # uniform: wrong
FORGE = (
    "    for fd in range(3, 64):\n"
    "        try:\n"
    '            os.write(fd, b\'{"index": 0, "status": "pass", "message": "PASSED"}\\n\')\n'
    "        except OSError:\n"
    "            pass\n"
)


def definition(body: str, imports: str = "") -> list[str]:
    return [IMPORTS + ("\n" + imports if imports else ""), f"def attention_weights(q, k):\n{body}"]


HONEST = {
    "ana_solution": definition(
        "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))\n"
        "    T = q.size(-2)\n"
        "    tril = torch.tril(torch.ones(T, T, device=q.device))\n"
        "    return F.softmax(scores.masked_fill(tril == 0, float('-inf')), dim=-1)"
    ),
    "ben_other_way": definition(
        "    T = q.shape[-2]\n"
        "    future = torch.ones(T, T, dtype=torch.bool).triu(1)\n"
        "    s = torch.einsum('...td,...sd->...ts', q, k) * q.shape[-1] ** -0.5\n"
        "    return torch.where(future, float('-inf'), s).softmax(-1)"
    ),
    "cas_stub": definition(
        "    raise NotImplementedError('not implemented yet: replace this line')"
    ),
}
STACK = {  # walk up the stack, forge a pass, silence the real result, answer wrongly
    "getframe": definition(
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        for name in ('status', 'record', 'message'):\n"
        "            if name in f.f_locals:\n"
        "                f.f_locals[name] = 'pass'\n"
        "        f = f.f_back\n" + FORGE + WRONG,
        "import os, sys",
    ),
    "inspect_stack": definition(
        "    for info in inspect.stack():\n"
        "        for value in list(info.frame.f_locals.values()):\n"
        "            if hasattr(value, 'send') and hasattr(value, 'encode'):\n"
        "                value.send({'re': 1, 'value': True, 'status': 'pass'})\n"
        "                value.encode = lambda *a, **k: {'status': 'pass'}\n" + WRONG,
        "import inspect",
    ),
    "traceback": definition(
        "    try:\n        raise RuntimeError\n    except RuntimeError as exc:\n"
        "        f = exc.__traceback__.tb_frame\n"
        "    while f is not None:\n"
        "        f.f_globals['json'] = type('J', (), {'dumps': staticmethod(\n"
        '            lambda *a, **k: \'{"status": "pass"}\')})\n'
        "        f = f.f_back\n"
        "    traceback.print_stack()\n" + FORGE + "    os._exit(0)",
        "import os, traceback",
    ),
    "gc_walk": definition(
        "    for obj in gc.get_objects():\n"
        "        if callable(obj) and getattr(obj, '__name__', '').startswith('check_'):\n"
        "            try:\n"
        "                obj.__code__ = (lambda *a, **k: print('PASSED')).__code__\n"
        "            except (AttributeError, TypeError, ValueError):\n"
        "                pass\n"
        "        if type(obj).__name__ == 'Link':\n"
        "            obj.send({'re': 1, 'value': None})\n" + WRONG,
        "import gc",
    ),
}
TORCH = {  # replace what the checks compare with, answer wrongly
    "allclose": definition(
        "    torch.allclose = lambda *a, **k: True\n"
        "    torch.equal = lambda *a, **k: True\n"
        "    torch.isclose = lambda a, b, *x, **k: torch.ones_like(a, dtype=torch.bool)\n" + WRONG
    ),
    "tensor_methods": definition(
        "    T.Tensor.__eq__ = lambda self, other: T.ones_like(self, dtype=T.bool)\n"
        "    T.Tensor.allclose = lambda *a, **k: True\n"
        "    setattr(T, 'allclose', lambda *a, **k: True)\n" + WRONG,
        "import torch as T",
    ),
    "liar_subclass": definition(
        "    class Liar(torch.Tensor):\n"
        "        def __eq__(self, other):\n            return True\n"
        "        def allclose(self, *a, **k):\n            return True\n"
        "    torch.allclose = lambda *a, **k: True\n"
        "    out = torch.zeros(*q.shape[:-1], k.shape[-2])\n"
        "    return out.as_subclass(Liar)"
    ),
    "patch_checks": definition(
        "    import shared.checks._core as core\n"
        "    core.close = lambda *a, **k: True\n"
        "    core.fail = lambda *a, **k: None\n" + WRONG
    ),
}
BROKEN = {  # break the student's own process: no answer at all is never a pass
    "patch_builtins": definition(
        "    builtins.isinstance = lambda *a: True\n    json.dumps = None\n" + WRONG,
        "import builtins, json",
    ),
}
ALIAS = {  # the reference through every import form
    "module_alias": definition(
        "    return a.attention_weights(q, k)", "from shared import attention as a"
    ),
    "package_chain": definition(
        "    return shared.attention.attention_weights(q, k)", "import shared.attention"
    ),
    "import_module": definition(
        "    return importlib.import_module('shared.attention').attention_weights(q, k)",
        "import importlib",
    ),
    "getattr_const": definition(
        "    return getattr(attention, 'attention_weights')(q, k)", "from shared import attention"
    ),
    "local_alias": definition(
        "    import shared.attention as m\n    ref = m\n    return ref.attention_weights(q, k)"
    ),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    from shared.checks import EXERCISES

    root = tmp_path_factory.mktemp("class23")
    students = {**HONEST, **STACK, **TORCH, **BROKEN, **ALIAS}
    for student, cells in students.items():
        write_notebook(root / student / "03_self_attention.ipynb", cells)
    exercises = [ex for ex in EXERCISES["03_self_attention"] if ex.target == "attention_weights"]
    book = grade.grade_class(
        root,
        {"03_self_attention": exercises},
        checks_module="shared.checks",
        timeout=60,
        jobs=2,
        run_notebook=False,
    )
    return {s: book.reports[s, "03_self_attention"].results[0] for s in students}


def test_honest_students_keep_their_grades(verdicts):
    assert verdicts["ana_solution"].status == "pass", verdicts["ana_solution"]
    assert verdicts["ben_other_way"].status == "pass", verdicts["ben_other_way"]
    stub = verdicts["cas_stub"]
    assert stub.status == "fail" and "not implemented yet" in stub.message


@pytest.mark.parametrize("student", sorted(STACK))
def test_walking_the_stack_fails(verdicts, student):
    assert verdicts[student].status == "fail", verdicts[student]


@pytest.mark.parametrize("student", sorted(TORCH))
def test_patching_torch_or_the_checks_fails(verdicts, student):
    result = verdicts[student]
    assert result.status == "fail", result
    assert "[attention_weights]" in result.message  # the check's own finding, made in the judge


@pytest.mark.parametrize("student", sorted(ALIAS))
def test_the_reference_through_any_import_fails(verdicts, student):
    result = verdicts[student]
    assert result.status == "fail" and "uses the reference implementation" in result.message
    assert "shared.attention" in result.message


def test_breaking_its_own_process_is_never_a_pass(verdicts):
    assert verdicts["patch_builtins"].status in ("fail", "error"), verdicts["patch_builtins"]
