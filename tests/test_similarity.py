"""similarity.md on hand-made gradebook records: a copied-and-renamed pair is found; three
independently written correct solutions, our own solution and the untouched stub are not."""

from __future__ import annotations

from difflib import SequenceMatcher

import pytest

from shared.checks import EXERCISES
from shared.grading import similarity
from shared.grading.gradebook import Gradebook
from shared.grading.selfcheck import ExerciseResult, NotebookReport
from tests.gradefake import write_notebook

LESSON = "03_self_attention"
IMPORTS = "import math\nimport torch\nimport torch.nn as nn\nfrom torch.nn import functional as F"

# Three correct attention_weights, written independently: different masks, scaling, softmax.
ALICE = """
def attention_weights(q, k):
    T, d = q.shape[-2], q.shape[-1]
    att = torch.matmul(q, k.transpose(-1, -2)) * d ** -0.5
    future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
    att = att.masked_fill(future, float("-inf"))
    return torch.softmax(att, dim=-1)
"""
BOB = """
def attention_weights(q, k):
    scale = 1.0 / math.sqrt(k.shape[-1])
    scores = torch.einsum("...td,...sd->...ts", q, k) * scale
    n = scores.shape[-1]
    idx = torch.arange(n, device=scores.device)
    later = idx[None, :] > idx[:, None]
    scores = torch.where(later, torch.full_like(scores, -math.inf), scores)
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = scores.exp()
    return e / e.sum(dim=-1, keepdim=True)
"""
CAROL = """
def causal_mask(T, device):
    return torch.tril(torch.ones(T, T, device=device)).bool()

def attention_weights(q, k):
    wei = q @ k.mT
    wei = wei / q.size(-1) ** 0.5
    mask = causal_mask(q.size(-2), q.device)
    wei = wei.masked_fill(~mask, -float("inf"))
    return wei.softmax(-1)
"""
# Alice's, copied: renamed, commented, annotated, reformatted, literals written otherwise.
DAVE = """
def attention_weights(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    '''My own attention weights.'''
    # sizes of the problem
    n_tok, dim = queries.shape[-2], queries.shape[-1]
    a = torch.matmul(queries,
                     keys.transpose(-1, -2)) * dim ** -0.5   # scaled scores
    fut = torch.triu(torch.ones(n_tok, n_tok, dtype=torch.bool,
                                device=queries.device), diagonal=0x1)
    a = a.masked_fill(fut, float('-inf'))  # no peeking
    return torch.softmax(a, dim=-1)
"""


def solution_source() -> str:
    references = similarity.reference_notebooks()
    return similarity.graded_code(references[LESSON]["solution"], "attention_weights")[1]


def stub_source() -> str:
    references = similarity.reference_notebooks()
    return similarity.graded_code(references[LESSON]["stub"], "attention_weights")[1]


def book_of(tmp_path, versions: dict[str, str]) -> Gradebook:
    """A gradebook as grade_class returns it, over notebooks holding ``versions``."""
    reports = {}
    for student, source in versions.items():
        path = tmp_path / student / f"{LESSON}.ipynb"
        write_notebook(path, ["# Lesson 3", IMPORTS, source, "check_attention_weights(x)"])
        results = [ExerciseResult(ex.name, "pass", "PASSED") for ex in EXERCISES[LESSON]]
        reports[student, LESSON] = NotebookReport(LESSON, str(path), results)
    return Gradebook(list(versions), [LESSON], reports)


@pytest.mark.parametrize("source", [ALICE, BOB, CAROL, DAVE])
def test_every_version_here_is_correct(source):
    """The independent versions are genuinely correct: the real check passes them."""
    from shared.checks import check_attention_weights

    namespace: dict = {}
    exec(IMPORTS + "\n" + source, namespace)
    check_attention_weights(namespace["attention_weights"])


def test_a_copied_and_renamed_pair_is_found_and_honest_work_is_not(tmp_path):
    versions = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE}
    book = book_of(tmp_path, versions)
    text = similarity.report(book, {LESSON: EXERCISES[LESSON]})
    matches = similarity.find_matches(
        similarity.collect(book, EXERCISES, similarity.reference_notebooks())
    )
    assert [(m.a.student, m.b.student, m.exercise) for m in matches] == [
        ("alice", "dave", "attention_weights")
    ]
    assert matches[0].score == 1.0  # identical once names and formatting are normalised
    assert "| alice | dave | 03_self_attention attention_weights | 1.00 |" in text
    assert "## alice and dave" in text
    # side by side: both versions, as graded
    table = text.split("## alice and dave", 1)[1]
    assert "<th>alice</th><th>dave</th>" in table
    assert "n_tok" in table and "future" in table
    for honest in ("bob", "carol"):
        assert honest not in text


def test_independent_correct_versions_score_well_below_the_threshold(tmp_path):
    book = book_of(tmp_path, {"alice": ALICE, "bob": BOB, "carol": CAROL})
    versions = similarity.collect(book, EXERCISES, similarity.reference_notebooks())
    found = versions[LESSON, "attention_weights"][1]
    assert len(found) == 3  # all compared: none was mistaken for the stub or our solution
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            ratio = SequenceMatcher(None, a.tokens, b.tokens, autojunk=False).ratio()
            assert ratio < 0.6, (a.student, b.student, ratio)  # measured: 0.30 to 0.43
    assert "No pair of students" in similarity.report(book, EXERCISES)


def test_code_equal_to_our_solution_or_to_the_stub_is_ignored(tmp_path):
    solution, stub = solution_source(), stub_source()
    book = book_of(tmp_path, {"eve": solution, "fay": solution, "gus": stub, "hal": stub})
    versions = similarity.collect(book, EXERCISES, similarity.reference_notebooks())
    assert (LESSON, "attention_weights") not in versions
    assert "No pair of students" in similarity.report(book, EXERCISES)


def test_the_stub_scaffolding_is_not_what_makes_two_versions_alike():
    """Head's stub gives everyone __init__: only what a student wrote is compared."""
    references = similarity.reference_notebooks()
    baseline = similarity.Baseline.of(references[LESSON], "Head")
    assert len(baseline.stub) > 100  # a large shared scaffold...
    own = similarity.own_tokens(baseline.solution, baseline.stub)
    assert len(own) < len(baseline.solution) - 100  # ...taken out before comparing


def test_normalising_keeps_library_calls_and_drops_formatting():
    def toks(source):
        import ast

        return similarity.tokens(ast.parse(source).body)

    plain = "def f(x):\n    return torch.softmax(x * 1000, dim=-1)"
    dressed = "def g(inp: 'T') -> 'T':\n    '''doc'''\n    return torch.softmax(inp*1_000,  dim = -1)  # c"
    assert toks(plain) == toks(dressed)
    assert toks(plain) != toks("def f(x):\n    return torch.log_softmax(x * 1000, dim=-1)")
    assert toks("def f(x):\n    return len(x)") != toks("def f(x):\n    return sum(x)")
    typed = (
        "def f(x):\n    y: int = x + 1\n    return g(y, scale=2)\ndef g(a, scale):\n    return a"
    )
    plain = "def f(b):\n    c = b + 1\n    return h(c, s=2)\ndef h(a, s):\n    return a"
    assert toks(typed) == toks(plain)  # own keyword names are names too; library ones are not


def test_code_too_deep_to_compare_is_skipped_not_a_crash(tmp_path):
    deep = "def attention_weights(q, k):\n    return " + "-" * 5000 + "q"
    book = book_of(tmp_path, {"alice": ALICE, "dave": DAVE, "zed": deep})
    versions = similarity.collect(book, EXERCISES, similarity.reference_notebooks())
    assert {v.student for v in versions[LESSON, "attention_weights"][1]} == {"alice", "dave"}


def test_two_versions_both_close_to_our_solution_are_not_listed(tmp_path):
    """Head's lesson leads step by step: two students who both wrote the solution's lines in
    another order match each other, and our solution; that is convergence, not copying."""
    references = similarity.reference_notebooks()
    solution = similarity.graded_code(references[LESSON]["solution"], "Head")[1]
    lines = "        k = self.key(x)\n        q = self.query(x)\n"
    assert lines in solution
    swapped = solution.replace(lines, "        q = self.query(x)\n        k = self.key(x)\n")
    book = book_of(tmp_path, {"ivy": swapped, "jon": swapped})
    matches = similarity.find_matches(similarity.collect(book, EXERCISES, references))
    assert [(m.exercise, m.near_solution) for m in matches] == [("head", True)]
    text = similarity.report(book, EXERCISES)
    assert "No pair of students" in text and "1 more close pair(s) not listed" in text
