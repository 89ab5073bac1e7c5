"""Checks for lesson 01 (data): the character tokenizer and ``get_batch``.

Both checks feed the learner's code small, seeded inputs whose right answer is easy to compute:
Spanish text for the tokenizer; for batches, data whose ids are all distinct but in shuffled
order, so every id says where it came from while "the next token" and "this id + 1" differ.
"""

from __future__ import annotations

import torch

from shared.checks._calls import call
from shared.checks._core import Exercise, attempt, fail, passed, require_callable, seeded

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
             "distinct): each character must appear once, or it gets two ids.")  # fmt: skip
    missing = sorted(set(expected) - set(chars))
    if missing:
        fail(name, f"the vocabulary is missing {''.join(missing)!r}: build it from the text "
             "passed in, so Spanish characters like ñ, á, ¿ get ids too.")  # fmt: skip
    extra = sorted(set(chars) - set(expected))
    if extra:
        fail(name, f"the vocabulary has characters that are not in the text: {''.join(extra)!r}; "
             "it must come from the `text` argument alone (not a notebook variable).")  # fmt: skip
    if chars != expected:
        fail(name, "self.chars is not sorted. The order of a set can change from run to run, "
             "and so would every id (saved models would break).")  # fmt: skip
    return chars


def _lookup_tables(name: str, tok, chars: list[str]) -> None:
    __tracebackhide__ = True
    stoi, itos = tok.stoi, tok.itos
    if chars[0] not in stoi and 0 in stoi and stoi[0] == chars[0]:
        fail(name, "stoi and itos are swapped: stoi maps a character to its id "
             "({'A': 0, ...}), itos maps an id back to its character.")  # fmt: skip
    got = {ch: stoi.get(ch) if hasattr(stoi, "get") else None for ch in chars}
    if all(got[ch] == i + 1 for i, ch in enumerate(chars)):
        fail(name, "off by one: ids must start at 0, so they index rows 0..vocab_size-1 of "
             "the embedding table.")  # fmt: skip
    wrong = [ch for i, ch in enumerate(chars) if got[ch] != i]
    if wrong:
        ch = wrong[0]
        fail(name, f"stoi[{ch!r}] is {got[ch]!r}, expected {chars.index(ch)}: a character's id "
             "is its position in self.chars.")  # fmt: skip
    try:
        back = [itos[i] for i in range(len(chars))]
    except (KeyError, IndexError, TypeError):
        back = None
    if back != chars:
        fail(name, "itos[i] must be the i-th character of self.chars, for i = 0..vocab_size-1, "
             "so that it undoes stoi.")  # fmt: skip


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
             "ids must not depend on the order of the text or on luck.")  # fmt: skip
    _lookup_tables(name, tok, chars)

    sample = "¿Año? ¡Sí, señor!"
    expected = [chars.index(ch) for ch in sample]
    call = f"encode({sample!r})"
    ids = _as_list(name, attempt(name, tok.encode, sample, what=call), call)
    if ids == list(sample):
        fail(name, f"{call} returned the characters themselves, not their ids (look each "
             "one up in self.stoi).")  # fmt: skip
    if ids == [ord(ch) for ch in sample]:
        fail(name, f"{call} returned Unicode code points (ord); ids must be positions in "
             "the vocabulary, 0..vocab_size-1, to index the embedding table.")  # fmt: skip
    if ids == [i + 1 for i in expected]:
        fail(name, f"{call} is off by one: ids start at 0.")
    if ids != expected:
        fail(name, f"{call} returned {ids}, expected {expected}.")

    call = f"decode({expected})"
    text = attempt(name, tok.decode, expected, what=call)
    if isinstance(text, (list, tuple)):
        fail(name, f"{call} returned a {type(text).__name__} of characters; decode returns "
             "one string (str.join).")  # fmt: skip
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

_OFFSET = 1000  # ids 1000.. in shuffled order: every id is unique, so it says where it came from

_PAST_THE_END = (
    "a window that starts too close to the end has no room for its target: the last valid start "
    "is len(data) - block_size - 1, and torch.randint's upper bound is exclusive"
)


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled distinct ids, and for each id - _OFFSET its position in the data."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(100 + seed))
    position = torch.empty(n, dtype=torch.long)
    position[order] = torch.arange(n)
    return order + _OFFSET, position


def _past_end_hint(call_text):
    def hint(exc: Exception) -> str | None:
        if isinstance(exc, (IndexError, RuntimeError, ValueError)) and "index" in str(exc).lower():
            return f"{call_text} raised {type(exc).__name__} ({exc}); {_PAST_THE_END}."
        if "stack expects each tensor to be equal size" in str(exc):
            return f"{call_text} raised {type(exc).__name__}: some windows were short; {_PAST_THE_END}."
        return None

    return hint


def _call_get_batch(name, get_batch, n, block_size, batch_size, seed=0, device="cpu"):
    """One call with every global RNG seeded (and restored), on shuffled data of length n."""
    __tracebackhide__ = True
    data, position = _data(n, seed)
    what = f"get_batch(data of length {n}, block_size={block_size}, batch_size={batch_size})"
    with seeded(seed):
        out = call(name, get_batch, data, block_size, batch_size, device, what=what,
                   hint=_past_end_hint(what))  # fmt: skip
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        fail(name, f"{what} should return two tensors (x, y), got {type(out).__name__}.")
    x, y = out
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        fail(
            name, f"{what} should return torch tensors, got {type(x).__name__}, {type(y).__name__}."
        )
    return x, y, what, data, position


def _check_shape_and_dtype(name, x, y, block_size, batch_size, call_text):
    __tracebackhide__ = True
    expected = (batch_size, block_size)
    for label, t in (("x", x), ("y", y)):
        shape = tuple(t.shape)
        if shape == expected:
            continue
        hint = {
            (batch_size, block_size + 1): "one column too many: each window holds block_size "
            "tokens",
            (block_size, batch_size): "transposed: each row must be one window",
        }.get(shape, "the shape must follow the block_size and batch_size arguments")
        fail(name, f"{call_text}: {label} has shape {shape}, expected {expected}: {hint}.")
    if x.dtype != torch.long or y.dtype != torch.long:
        fail(name, f"{call_text}: x and y should be torch.long token ids, got {x.dtype} and "
             f"{y.dtype} (nn.Embedding and cross_entropy need integer ids).")  # fmt: skip


def _check_windows(name, x, y, data, position, block_size, call_text):
    __tracebackhide__ = True
    n = len(data)

    def from_data(t):
        return bool(((t >= _OFFSET) & (t < _OFFSET + n)).all())

    if from_data(x) and torch.equal(y, x + 1):
        fail(name, f"{call_text}: y is each input id plus one: the target is the *next token "
             "in the data*, not the next id number.")  # fmt: skip
    if not (from_data(x) and from_data(y)):
        fail(name, f"{call_text}: x or y holds values that are not in the `data` passed in: the "
             "batch must be cut from the data argument (not a notebook variable).")  # fmt: skip
    px, py = position[x - _OFFSET], position[y - _OFFSET]  # where each token sits in data
    steps = torch.arange(block_size)
    starts = px[:, 0]  # (B,) where each row starts in data
    if not torch.equal(px, starts[:, None] + steps):
        fail(name, f"{call_text}: each row of x must be consecutive tokens of data, one window "
             "from a random start i.")  # fmt: skip
    if torch.equal(y, x):
        fail(name, f"{call_text}: y == x, the targets are not shifted: y must hold, for each "
             "input position, the token that comes after it.")  # fmt: skip
    if torch.equal(py, px - 1):
        fail(name, f"{call_text}: y is shifted the wrong way (it holds the token before x).")
    if not torch.equal(py, px + 1):
        fail(name, f"{call_text}: y must be the same window as x moved one token to the right "
             "(the same start i).")  # fmt: skip
    last = n - block_size - 1  # the last start whose target still fits
    if starts.min() < 0 or starts.max() > last:
        fail(name, f"{call_text}: a window starts at {int(starts.max())}, past the last valid "
             f"start {last} = len(data) - block_size - 1.")  # fmt: skip
    return starts


def _batch(name, get_batch, n, block_size, batch_size, seed):
    __tracebackhide__ = True
    x, y, what, data, position = _call_get_batch(name, get_batch, n, block_size, batch_size, seed)
    _check_shape_and_dtype(name, x, y, block_size, batch_size, what)
    starts = _check_windows(name, x, y, data, position, block_size, what)
    return x, starts, what


def check_get_batch(get_batch) -> None:
    """``get_batch(data, block_size, batch_size, device="cpu")`` -> x, y of shape (B, T)."""
    __tracebackhide__ = True
    name = "get_batch"
    require_callable(name, get_batch, "your get_batch function")
    n, block_size, batch_size = 200, 6, 24  # T+1 is no common notebook block_size
    x, starts, what = _batch(name, get_batch, n, block_size, batch_size, seed=0)
    if x.device.type != "cpu":
        fail(name, f"{what} with device='cpu' returned tensors on {x.device}.")
    if bool((starts == 0).all()):
        fail(name, f"{what}: every row starts at index 0; the starts must be random.")
    if len(set(starts.tolist())) == 1:
        fail(name, f"{what}: all {batch_size} rows are the same window; each row needs its own "
             "random start.")  # fmt: skip
    with seeded(1):  # the same data under another seed must give another batch
        data, _ = _data(n, 0)
        x2 = call(name, get_batch, data, block_size, batch_size, "cpu", what=what)[0]
    if torch.equal(x, x2):
        fail(name, "get_batch returns the same batch whatever the random seed: the starts must be "
             "drawn from the global random generator (not a fixed seed or a fixed list).")  # fmt: skip

    # Other sizes, other data: the result must follow every argument.
    _batch(name, get_batch, 120, 5, 9, seed=3)
    # Tiny data: 3 valid starts (0, 1, 2). Off-by-one ranges crash, or never reach the end.
    n, block_size, batch_size = 7, 4, 200
    _, starts, what = _batch(name, get_batch, n, block_size, batch_size, seed=2)
    if int(starts.max()) < n - block_size - 1:
        fail(name, f"{what}: in {batch_size} draws no window starts at {n - block_size - 1}, the "
             "last valid start: torch.randint's upper bound is exclusive.")  # fmt: skip

    # device='meta' needs no hardware: tensors that stay on the CPU ignored the argument.
    try:
        with seeded(3):
            meta = get_batch(_data(50, 3)[0], 4, 2, "meta")
    except Exception:  # some valid code cannot run on 'meta': nothing to learn from it
        meta = None
    if meta is not None and any(t.device.type != "meta" for t in meta):
        fail(name, "get_batch ignores its device argument: the batch must be moved to `device` "
             "so training can run on a GPU.")  # fmt: skip
    passed(name, "(B, T) long windows at random starts, y = x shifted by one, on the device")
