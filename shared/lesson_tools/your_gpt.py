"""Your own GPT (lesson 06's capstone): a GPT built from the classes you wrote in lessons 03-05.

Notebooks are separate kernels, so lesson 06 cannot see lesson 05's classes. ``your_parts``
reads your lesson notebooks (plain JSON), takes your last definition of each exercise
(``attention_weights`` and ``Head`` from 03, ``MultiHeadAttention`` from 04, ``FeedForward``
and ``Block`` from 05), defines them in one namespace in lesson order (so your Block builds
your MultiHeadAttention, which builds your Head, which calls your attention_weights), runs each
through its check from ``shared.checks``, and uses the reference for any that fails. It says
exactly which parts are yours:

    parts = your_parts("lessons/")
    print(parts.summary())
    model = GPT(config, block=parts.block)           # every block is your Block
    train(corpus, config, model=model, source=parts.source, out="checkpoints/gpt.pt")

Only class and function definitions are taken from your notebooks, never other cells, and
they run in your own Python process, like the notebooks themselves.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared import attention, block

LESSONS = ("03_self_attention", "04_multihead", "05_block")
# The exercises your GPT is made of, in the order they are defined, with their references.
REFERENCES = {
    "attention_weights": attention.attention_weights,
    "Head": attention.Head,
    "MultiHeadAttention": attention.MultiHeadAttention,
    "FeedForward": block.FeedForward,
    "Block": None,  # HeadsBlock on whichever MultiHeadAttention and FeedForward are in use
}


class HeadsBlock(nn.Module):
    """Lesson 05's Block: the reference forward on per-head attention and a feed-forward.

    ``attention`` and ``feedforward`` are the classes to build (yours or the reference), called
    with the lesson signatures ``attention(n_embd, n_head, block_size, dropout)`` and
    ``feedforward(n_embd, dropout)``.
    """

    def __init__(
        self,
        n_embd,
        n_head,
        block_size,
        dropout=0.0,
        attention=attention.MultiHeadAttention,
        feedforward=block.FeedForward,
    ):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.sa = attention(n_embd, n_head, block_size, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ffwd = feedforward(n_embd, dropout)

    forward = block.Block.forward  # x = x + sa(ln1(x)); x = x + ffwd(ln2(x))


@dataclass
class YourParts:
    """Which of your classes made it into your GPT, and why the others are the reference."""

    namespace: dict
    theirs: list[str] = field(default_factory=list)  # passed its check and is used
    reasons: dict[str, str] = field(default_factory=dict)  # name -> why the reference is used

    @property
    def block(self):
        """The Block class to pass to ``GPT(config, block=...)``."""
        return self.namespace["Block"]

    @property
    def source(self) -> str:
        """A one-line note for the checkpoint."""
        if not self.theirs:
            return "reference GPT (none of your lesson 03-05 classes passed their checks)"
        return f"your GPT (lessons 03-05): yours = {', '.join(self.theirs)}"

    def summary(self) -> str:
        lines = [f"  {name:<18} yours" for name in self.theirs]
        lines += [f"  {name:<18} reference: {why}" for name, why in self.reasons.items()]
        return "\n".join(lines)


def notebook_definitions(path: Path, names) -> dict[str, str]:
    """Source of the last top-level ``def``/``class`` of each of ``names`` in a notebook."""
    found: dict[str, str] = {}
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics or unfinished code: nothing we can take
            continue
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = source.splitlines()[first - 1 : node.end_lineno]
                found[node.name] = "\n".join(lines)
    return found


def _run_check(check, candidate) -> str | None:
    """None if ``candidate`` passes ``check``; else the check's hint (first line)."""
    try:
        with torch.random.fork_rng(), contextlib.redirect_stdout(io.StringIO()):
            check(candidate)
    except Exception as exc:  # ExerciseFailed, or a crash inside the learner's code
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


def your_parts(folder: str | Path) -> YourParts:
    """Your classes from ``folder``'s lesson 03-05 notebooks, checked; the reference otherwise."""
    import shared.checks as checks

    folder = Path(folder)
    namespace = {"torch": torch, "nn": nn, "F": F, "math": math, **REFERENCES}
    parts = YourParts(namespace)
    passed = set()
    for lesson in LESSONS:
        path = folder / f"{lesson}.ipynb"
        exercises = [e for e in checks.EXERCISES[lesson] if e.target in REFERENCES]
        definitions = (
            notebook_definitions(path, {e.target for e in exercises}) if path.is_file() else {}
        )
        for exercise in exercises:
            name = exercise.target
            why = f"{path.name} not found in {folder}" if not path.is_file() else None
            if why is None and name not in definitions:
                why = f"no definition of {name} in {path.name}"
            if why is None:
                try:
                    exec(compile(definitions[name], f"<your {name}>", "exec"), namespace)
                    why = _run_check(getattr(checks, exercise.check), namespace[name])
                except Exception as exc:
                    why = f"defining it raised {type(exc).__name__}: {exc}"
            if why is None:
                passed.add(name)
            else:
                parts.reasons[name] = why
                namespace[name] = REFERENCES[name]
    if namespace["Block"] is None:
        namespace["Block"] = functools.partial(
            HeadsBlock,
            attention=namespace["MultiHeadAttention"],
            feedforward=namespace["FeedForward"],
        )
    # Your earlier classes only count if the later ones build them: the reference
    # MultiHeadAttention builds the reference Head, which calls the reference attention_weights.
    used = set(passed)
    if "MultiHeadAttention" not in used:
        used.discard("Head")
    if "Head" not in used:
        used.discard("attention_weights")
    builder = {"Head": "MultiHeadAttention builds", "attention_weights": "Head calls"}
    for name in sorted(passed - used, key=list(REFERENCES).index):
        parts.reasons[name] = f"yours passed its check, but the reference {builder[name]} its own"
    parts.theirs = [name for name in REFERENCES if name in used]
    parts.reasons = {n: parts.reasons[n] for n in REFERENCES if n in parts.reasons}
    return parts
