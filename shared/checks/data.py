"""Checks for lesson 01 (data): the character tokenizer and ``get_batch``.

Both checks feed the learner's code small, seeded inputs whose right answer is easy to compute
(Spanish text for the tokenizer, ``data = 1000 + arange(N)`` for batches, so every id says
where it came from), then name the classic mistake that matches what came back.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from shared.checks._core import NOT_IMPLEMENTED, Exercise, attempt, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="tokenizer",
        check="check_tokenizer",
        target="CharTokenizer",
        description="CharTokenizer(text): sorted vocabulary, stoi/itos, encode, decode",
    ),
    Exercise(
        name="get_batch",
        check="check_get_batch",
        target="get_batch",
        description="get_batch(data, block_size, batch_size, device) -> x, y of shape (B, T)",
    ),
]

# Every character here on purpose: accents, ñ, ü, inverted marks, quotes, newline, digits.
_TEXT = "¿Quién es? ¡Señor don Quijote!\nAños de niñería, pingüino; «sí», dijo Sancho: 1605."


# ----------------------------------------------------------------------------- tokenizer


def _as_list(name: str, value, call: str) -> list:
    __tracebackhide__ = True
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        fail(
            name, f"{call} returned {type(value).__name__} {value!r:.60}; expected a list of ints."
        )
    return list(value)


def _vocabulary(name: str, tok) -> list[str]:
    """The learner's ``chars``, checked to be exactly the sorted distinct characters."""
    __tracebackhide__ = True
    for attribute in ("chars", "stoi", "itos"):
        if not hasattr(tok, attribute):
            fail(name, f"the tokenizer has no `self.{attribute}`; set it in __init__.")
    chars = list(tok.chars)
    expected = sorted(set(_TEXT))
    if len(chars) != len(set(chars)):
        fail(name, f"self.chars has duplicates ({len(chars)} entries, {len(set(chars))} "
             "distinct): build it from set(text), which keeps each character once.")  # fmt: skip
    missing = sorted(set(expected) - set(chars))
    if missing:
        fail(name, f"the vocabulary is missing {''.join(missing)!r}: build it from the text "
             "itself, sorted(set(text)), so Spanish characters like ñ, á, ¿ get ids too.")  # fmt: skip
    extra = sorted(set(chars) - set(expected))
    if extra:
        fail(name, f"the vocabulary has characters that are not in the text: {''.join(extra)!r}; "
             "build it from sorted(set(text)) only.")  # fmt: skip
    if chars != expected:
        fail(name, "self.chars is not sorted: use sorted(set(text)). The order of a set can "
             "change from run to run, and so would every id (saved models would break).")  # fmt: skip
    return chars


def _lookup_tables(name: str, tok, chars: list[str]) -> None:
    __tracebackhide__ = True
    stoi, itos = tok.stoi, tok.itos
    if chars[0] not in stoi and 0 in stoi and stoi[0] == chars[0]:
        fail(name, "stoi and itos are swapped: stoi maps a character to its id "
             "({'A': 0, ...}), itos maps an id back to its character.")  # fmt: skip
    got = {ch: stoi.get(ch) if hasattr(stoi, "get") else None for ch in chars}
    if all(got[ch] == i + 1 for i, ch in enumerate(chars)):
        fail(name, "off by one: ids must start at 0 (enumerate(chars), not enumerate(chars, 1)), "
             "so they index rows 0..vocab_size-1 of the embedding table.")  # fmt: skip
    wrong = [ch for i, ch in enumerate(chars) if got[ch] != i]
    if wrong:
        ch = wrong[0]
        fail(name, f"stoi[{ch!r}] is {got[ch]!r}, expected {chars.index(ch)} (its position in "
             "self.chars): stoi = {ch: i for i, ch in enumerate(self.chars)}.")  # fmt: skip
    try:
        back = [itos[i] for i in range(len(chars))]
    except (KeyError, IndexError, TypeError):
        back = None
    if back != chars:
        fail(name, "itos[i] must be the i-th character of self.chars, for i = 0..vocab_size-1: "
             "itos = {i: ch for i, ch in enumerate(self.chars)} (or the list itself).")  # fmt: skip


def check_tokenizer(CharTokenizer) -> None:  # noqa: N803 - the learner's class name
    """``CharTokenizer(text)``: sorted vocabulary, ``stoi``/``itos``, ``encode``/``decode``."""
    __tracebackhide__ = True
    name = "tokenizer"
    require_callable(name, CharTokenizer, "your CharTokenizer class")
    tok = attempt(name, CharTokenizer, _TEXT, what="CharTokenizer(text)")
    chars = _vocabulary(name, tok)
    # Built again from the same characters in another order: the same vocabulary, same ids.
    again = attempt(name, CharTokenizer, _TEXT[::-1], what="CharTokenizer(reversed text)")
    if list(getattr(again, "chars", [])) != chars:
        fail(name, "two tokenizers built from the same characters got different vocabularies: "
             "sort them, sorted(set(text)), so ids never depend on order or luck.")  # fmt: skip
    _lookup_tables(name, tok, chars)

    sample = "¿Año? ¡Sí, señor!"
    expected = [chars.index(ch) for ch in sample]
    call = f"encode({sample!r})"
    ids = _as_list(name, attempt(name, tok.encode, sample, what=call), call)
    if ids == list(sample):
        fail(name, f"{call} returned the characters themselves; look each one up: "
             "[self.stoi[ch] for ch in text].")  # fmt: skip
    if ids == [ord(ch) for ch in sample]:
        fail(name, f"{call} returned Unicode code points (ord); ids must be positions in "
             "the vocabulary, 0..vocab_size-1: use self.stoi[ch].")  # fmt: skip
    if ids == [i + 1 for i in expected]:
        fail(name, f"{call} is off by one: ids start at 0.")
    if ids != expected:
        fail(name, f"{call} returned {ids}, expected {expected}.")

    call = f"decode({expected})"
    text = attempt(name, tok.decode, expected, what=call)
    if isinstance(text, (list, tuple)):
        fail(name, f"{call} returned a {type(text).__name__} of characters; join them into "
             "one string: ''.join(...).")  # fmt: skip
    if not isinstance(text, str):
        fail(name, f"{call} returned {type(text).__name__}; expected the string {sample!r}.")
    if text != sample:
        fail(name, f"{call} returned {text!r}, expected {sample!r}: decode must undo encode.")
    round_trip = attempt(name, lambda: tok.decode(tok.encode(_TEXT)), what="decode(encode(text))")
    if round_trip != _TEXT:
        fail(name, "decode(encode(text)) does not give back the text it started from.")
    empty = attempt(name, lambda: (tok.encode(""), tok.decode([])), what="encode('')/decode([])")
    if list(empty[0]) != [] or empty[1] != "":
        fail(name, "encode('') should be [] and decode([]) should be ''.")
    passed(name, f"{len(chars)} characters sorted, ids 0..{len(chars) - 1}, decode(encode(s)) == s")


# ----------------------------------------------------------------------------- get_batch

_OFFSET = 1000  # data = _OFFSET + position, so every id tells where it came from


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:100]


_PAST_THE_END = (
    "if a window starts too close to the end there is no room for its target: the last valid "
    "start is len(data) - block_size - 1, so use torch.randint(len(data) - block_size, ...)."
)


@contextmanager
def _seeded(seed: int):
    """Seed every RNG a learner might use (torch, random, numpy); restore them afterwards."""
    state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            yield
    finally:
        random.setstate(state)
        np.random.set_state(np_state)


def _call_get_batch(name, get_batch, n, block_size, batch_size, seed=0):
    """One seeded call (see ``_seeded``) with ``data[i] = _OFFSET + i``."""
    __tracebackhide__ = True
    data = torch.arange(_OFFSET, _OFFSET + n, dtype=torch.long)
    call = f"get_batch(data of length {n}, block_size={block_size}, batch_size={batch_size})"
    with _seeded(seed):
        try:
            out = get_batch(data, block_size, batch_size, "cpu")
        except NotImplementedError:
            fail(
                name,
                f"{NOT_IMPLEMENTED}: replace the `raise NotImplementedError` line with your code.",
            )
        except (IndexError, RuntimeError, ValueError) as exc:  # short rows, bad indices
            fail(name, f"{call} raised {type(exc).__name__} ({_short(exc)}); {_PAST_THE_END}")
        except Exception as exc:
            fail(name, f"calling {call} raised {type(exc).__name__}: {_short(exc)}")
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        fail(name, f"{call} should return two tensors (x, y), got {type(out).__name__}.")
    x, y = out
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        fail(
            name, f"{call} should return torch tensors, got {type(x).__name__}, {type(y).__name__}."
        )
    return x, y, call


def _check_shape_and_dtype(name, x, y, block_size, batch_size, call):
    __tracebackhide__ = True
    expected = (batch_size, block_size)
    for label, t in (("x", x), ("y", y)):
        shape = tuple(t.shape)
        if shape == expected:
            continue
        hint = {
            (batch_size, block_size + 1): "one column too many: x = data[i : i + block_size], "
            "y = data[i + 1 : i + block_size + 1].",
            (block_size, batch_size): "transposed: stack the windows as rows, "
            "torch.stack([...]) gives (batch_size, block_size).",
        }.get(shape, "expected (batch_size, block_size) = (B, T).")
        fail(name, f"{call}: {label} has shape {shape}, expected {expected}: {hint}")
    if x.dtype != torch.long or y.dtype != torch.long:
        fail(name, f"{call}: x and y should be torch.long token ids, got {x.dtype} and {y.dtype} "
             "(nn.Embedding and cross_entropy need integer ids).")  # fmt: skip


def _check_windows(name, x, y, n, block_size, call):
    __tracebackhide__ = True
    steps = torch.arange(block_size)
    starts = x[:, 0] - _OFFSET  # (B,) where each row starts in data
    if not torch.equal(x, starts[:, None] + steps + _OFFSET):
        fail(name, f"{call}: each row of x must be consecutive tokens, data[i : i + block_size], "
             "for a random start i.")  # fmt: skip
    if torch.equal(y, x):
        fail(name, f"{call}: y == x, the targets are not shifted: y must be "
             "data[i + 1 : i + block_size + 1], the token that comes after each input.")  # fmt: skip
    if torch.equal(y, x - 1):
        fail(name, f"{call}: y is shifted the wrong way (it holds the token before x): "
             "y = data[i + 1 : i + block_size + 1].")  # fmt: skip
    if not torch.equal(y, x + 1):
        fail(name, f"{call}: y must be the same window as x shifted by one, "
             "data[i + 1 : i + block_size + 1], with the same start i.")  # fmt: skip
    last = n - block_size - 1  # the last start whose target still fits
    if starts.min() < 0 or starts.max() > last:
        fail(name, f"{call}: a window starts at {int(starts.max())}, past the last valid start "
             f"{last} = len(data) - block_size - 1.")  # fmt: skip
    return starts


def check_get_batch(get_batch) -> None:
    """``get_batch(data, block_size, batch_size, device="cpu")`` -> x, y of shape (B, T)."""
    __tracebackhide__ = True
    name = "get_batch"
    require_callable(name, get_batch, "your get_batch function")
    n, block_size, batch_size = 200, 8, 32
    x, y, call = _call_get_batch(name, get_batch, n, block_size, batch_size)
    _check_shape_and_dtype(name, x, y, block_size, batch_size, call)
    if x.device.type != "cpu" or y.device.type != "cpu":
        fail(name, f"{call} with device='cpu' returned tensors on {x.device}, {y.device}.")
    starts = _check_windows(name, x, y, n, block_size, call)
    if bool((starts == 0).all()):
        fail(name, f"{call}: every row starts at index 0; pick random starts with "
             "torch.randint(len(data) - block_size, (batch_size,)).")  # fmt: skip
    if len(set(starts.tolist())) == 1:
        fail(name, f"{call}: all {batch_size} rows are the same window; draw one random start "
             "per row: torch.randint(..., (batch_size,)).")  # fmt: skip
    x2, *_ = _call_get_batch(name, get_batch, n, block_size, batch_size, seed=1)
    if torch.equal(x, x2):
        fail(name, "get_batch returns the same batch whatever the random seed: don't call "
             "torch.manual_seed inside get_batch, and draw the starts at random.")  # fmt: skip

    # Tiny data: 3 valid starts (0, 1, 2). Off-by-one ranges crash, or never reach the end.
    n, block_size, batch_size = 7, 4, 200
    x, y, call = _call_get_batch(name, get_batch, n, block_size, batch_size, seed=2)
    _check_shape_and_dtype(name, x, y, block_size, batch_size, call)
    starts = _check_windows(name, x, y, n, block_size, call)
    if int(starts.max()) < n - block_size - 1:
        fail(name, f"{call}: in {batch_size} draws no window starts at {n - block_size - 1}, the "
             "last valid start: torch.randint's upper bound is exclusive, so use "
             "torch.randint(len(data) - block_size, ...).")  # fmt: skip

    # device='meta' needs no hardware: tensors that stay on the CPU ignored the argument.
    try:
        with _seeded(3):
            meta = get_batch(torch.arange(_OFFSET, _OFFSET + 50), 4, 2, "meta")
    except Exception:  # some valid code cannot run on 'meta': nothing to learn from it
        meta = None
    if meta is not None and any(t.device.type != "meta" for t in meta):
        fail(name, "get_batch ignores its device argument: move the batch with "
             "x.to(device), y.to(device) so training can run on a GPU.")  # fmt: skip
    passed(name, "(B, T) long windows at random starts, y = x shifted by one, on the device")
