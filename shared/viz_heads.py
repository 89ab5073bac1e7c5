"""Naming attention heads honestly (lesson 08).

Pictures invite stories, so we measure. For a few *patterns* (places a head might look), each
head gets a score: its mean attention on that pattern's (query, key) cells of a text.

- ``pattern_cells``: the cells of each pattern: the query itself, the previous character, two
  back, the first character of the window, the first letter of the current word. No cell
  belongs to two patterns, so one behaviour cannot score on two of them (a head that looks two
  back must not pass for a word-start head whenever a word began two back).
- ``head_scores``: each head's mean attention on each pattern's cells.
- Two baselines. ``even_spread_scores``: a head spreading its attention evenly over the past.
  ``same_distance_scores``: the head's own attention on the *other* characters at the same
  distances back; a head that counts distance, not words, scores as high there as on the word
  start (NaN for self/previous/two_back, whose distance is all they are).
- The rule, ``is_finding``: a head does a pattern when its score is at least ``FINDING_RATIO``
  (3) times the even spread's, and 3 times its same-distance score where there is one.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from shared.engine.errors import CourseError

PATTERNS = {
    "self": "its own character",
    "previous": "the previous character",
    "two_back": "the character two back",
    "first": "the first character of the window (3 or more back)",
    "word_start": "the first letter of the current word (3 or more back)",
}
FINDING_RATIO = 3.0  # "clearly beats chance": at least 3x each baseline


def pattern_cells(text: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """For each pattern of ``PATTERNS``, the (queries, keys) index pairs it scores in ``text``.

    ``first`` and ``word_start`` count only queries at least 3 characters after that place, and
    ``word_start`` only words that begin inside the text (after a space or newline, not at 0), so
    no cell belongs to two patterns.
    """
    T = len(text)
    starts, last_space = [], None  # starts[i]: first letter of the word query i is in (or ends)
    for i, ch in enumerate(text):
        starts.append(None if last_space is None else last_space + 1)
        if ch in " \n":
            last_space = i
    far_words = [i for i in range(T) if starts[i] is not None and starts[i] <= i - 3]
    far = torch.arange(3, T)  # queries at least 3 after position 0
    return {
        "self": (torch.arange(T), torch.arange(T)),
        "previous": (torch.arange(1, T), torch.arange(T - 1)),
        "two_back": (torch.arange(2, T), torch.arange(max(T - 2, 0))),
        "first": (far, torch.zeros(len(far), dtype=torch.long)),
        "word_start": (
            torch.tensor(far_words, dtype=torch.long),
            torch.tensor([starts[i] for i in far_words], dtype=torch.long),
        ),
    }


def _check_text(attn: torch.Tensor, text: str) -> None:
    T = attn.shape[-1]
    if T < 4 or len(text) != T:
        raise CourseError(f"need a text of at least 4 characters matching the weights (T={T})")


def head_scores(attn: torch.Tensor, text: str) -> dict[str, torch.Tensor]:
    """attn (n_layer, n_head, T, T) for ``text`` -> {pattern: (n_layer, n_head) mean attention on
    its cells}, in [0, 1]; NaN for a pattern with no cells in this text."""
    _check_text(attn, text)
    scores = {}
    for name, (queries, keys) in pattern_cells(text).items():
        if len(queries) == 0:
            scores[name] = torch.full(attn.shape[:2], float("nan"))
        else:
            scores[name] = attn[..., queries, keys].mean(-1)  # (n_layer, n_head)
    return scores


def even_spread_scores(text: str) -> dict[str, float]:
    """What a head spreading its attention evenly over the past scores on each pattern."""
    T = len(text)
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(-1, keepdim=True)  # (T, T): row i is 1/(i+1) up to i
    scores = head_scores(uniform.expand(1, 1, T, T), text)
    return {name: float(value[0, 0]) for name, value in scores.items()}


def same_distance_scores(attn: torch.Tensor, text: str) -> dict[str, torch.Tensor]:
    """{pattern: (n_layer, n_head)}: each head's mean attention on the cells at the same
    distances back as the pattern's cells but outside the pattern (weighted like the pattern's
    distances); NaN where no such cell exists (self, previous, two_back)."""
    _check_text(attn, text)
    T = attn.shape[-1]
    distance = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # (T, T): query - key
    out = {}
    for name, (queries, keys) in pattern_cells(text).items():
        in_pattern = torch.zeros(T, T, dtype=torch.bool)
        in_pattern[queries, keys] = True
        total, count = torch.zeros(attn.shape[:2]), 0
        for d, n_cells in zip(*(queries - keys).unique(return_counts=True), strict=True):
            others = (distance == d) & ~in_pattern  # (T, T)
            if others.any():
                total += attn[..., others].mean(-1) * n_cells  # (n_layer, n_head)
                count += int(n_cells)
        out[name] = total / count if count else torch.full(attn.shape[:2], float("nan"))
    return out


class HeadScores(NamedTuple):
    scores: dict[str, torch.Tensor]  # pattern -> (n_layer, n_head)
    even: dict[str, float]  # pattern -> the even spread's score
    same_distance: dict[str, torch.Tensor]  # pattern -> (n_layer, n_head), NaN where none


def average_head_scores(model, tokenizer, texts) -> HeadScores:
    """The scores and both baselines averaged over several texts (each at most block_size
    characters): more cells per pattern than one window gives, so steadier numbers."""
    from shared.viz import collect_attention

    texts = list(texts)
    if not texts:
        raise CourseError("give at least one text")
    runs = []
    for text in texts:
        attn = collect_attention(model, tokenizer, text)  # (n_layer, n_head, T, T)
        scores, even = head_scores(attn, text), even_spread_scores(text)
        runs.append((scores, even, same_distance_scores(attn, text)))

    def mean(i: int, name: str):
        return torch.stack([torch.as_tensor(run[i][name]) for run in runs]).nanmean(0)

    return HeadScores(
        scores={name: mean(0, name) for name in PATTERNS},
        even={name: float(mean(1, name)) for name in PATTERNS},
        same_distance={name: mean(2, name) for name in PATTERNS},
    )


def best_head(scores: dict[str, torch.Tensor], pattern: str) -> tuple[int, int, float]:
    """(layer, head, score) of the head that scores highest on ``pattern``."""
    table = torch.nan_to_num(scores[pattern], nan=-1.0)
    flat = int(table.argmax())
    layer, head = divmod(flat, table.shape[1])
    return layer, head, float(table[layer, head])


def is_finding(
    score: float, even: float, same_distance: float = float("nan"), ratio: float = FINDING_RATIO
) -> bool:
    """The rule for naming a head: ``score`` is at least ``ratio`` times the even spread's and, if
    there is a same-distance baseline (not NaN), at least ``ratio`` times that too."""
    score, even, same_distance = float(score), float(even), float(same_distance)
    if score != score or not score >= ratio * even:  # NaN, or no better than an even spread
        return False
    return same_distance != same_distance or score >= ratio * same_distance
