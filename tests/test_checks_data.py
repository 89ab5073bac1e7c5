"""Lesson 01's checks: the stub, our solution, a different correct one, and classic bugs, each
rejected with a hint that names the mistake."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub

from shared import data
from shared.checks import EXERCISES, check_get_batch, check_tokenizer


def test_exercises_are_registered():
    assert [(e.check, e.target) for e in EXERCISES["01_data"]] == [
        ("check_tokenizer", "CharTokenizer"),
        ("check_get_batch", "get_batch"),
    ]


# ----------------------------------------------------------------------------- tokenizer


class StubTokenizer:
    """What the lesson hands out: __init__ is the exercise."""

    def __init__(self, text):
        stub()


class HalfDoneTokenizer(data.CharTokenizer):
    """Vocabulary done, encode still the stub."""

    def encode(self, text):
        stub()


class ListTokenizer:
    """Correct, written differently: itos is a list, chars a string, encode via map()."""

    def __init__(self, text):
        self.chars = "".join(sorted(frozenset(text)))
        self.itos = list(self.chars)
        self.stoi = {ch: self.chars.index(ch) for ch in self.chars}

    def encode(self, s):
        return list(map(self.stoi.__getitem__, s))

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


class Base:
    """The lesson's reference shape; subclasses break one thing each."""

    def vocab(self, text):
        return sorted(set(text))

    def __init__(self, text):
        self.chars = self.vocab(text)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = {i: ch for i, ch in enumerate(self.chars)}

    def encode(self, s):
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


class Unsorted(Base):
    def vocab(self, text):
        return list(dict.fromkeys(text))  # first-seen order: stable, but not sorted


class Shuffled(Base):
    def vocab(self, text):
        chars = sorted(set(text))
        random.shuffle(chars)  # different every time
        return chars


class Duplicates(Base):
    def vocab(self, text):
        return sorted(text)  # forgot set()


class AsciiOnly(Base):
    def vocab(self, text):
        return sorted(set(text.encode("ascii", "ignore").decode()))


class Lowercased(Base):
    def vocab(self, text):
        return sorted(set(text.lower()))


class OneBased(Base):
    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, 1)}
        self.itos = {i: ch for i, ch in enumerate(self.chars, 1)}


class Swapped(Base):
    def __init__(self, text):
        super().__init__(text)
        self.stoi, self.itos = self.itos, self.stoi


class OrdEncode(Base):
    def encode(self, s):
        return [ord(c) for c in s]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class CharsNotIds(Base):
    def encode(self, s):
        return list(s)


class DecodeList(Base):
    def decode(self, ids):
        return [self.itos[i] for i in ids]


class DecodeOffByOne(Base):
    def decode(self, ids):
        return "".join(self.itos[min(i + 1, len(self.chars) - 1)] for i in ids)


class NoItos(Base):
    def __init__(self, text):
        super().__init__(text)
        del self.itos


NOTEBOOK_TEXT = "En un lugar de la Mancha"  # what a notebook global might hold


class GlobalText(Base):
    def vocab(self, text):
        return sorted(set(text + NOTEBOOK_TEXT))  # the argument plus a notebook global


class EncodeTensor(Base):
    def encode(self, s):
        return torch.tensor([self.stoi[c] for c in s])


class EncodeMutates(Base):
    def encode(self, s):
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        text = "".join(self.itos[i] for i in ids)
        ids.clear()  # empties the caller's list
        return text


def test_tokenizer_stub_and_half_done_say_not_implemented():
    assert_fails(check_tokenizer, StubTokenizer, "not implemented yet")
    assert_fails(check_tokenizer, HalfDoneTokenizer, "not implemented yet")


@pytest.mark.parametrize("good", [data.CharTokenizer, ListTokenizer, Base], ids=repr)
def test_tokenizer_accepts_correct_versions(good, capsys):
    assert_passes(check_tokenizer, good, capsys)


@pytest.mark.parametrize(
    "buggy, fragments",
    [
        (Unsorted, ["not sorted", "run to run"]),
        (Shuffled, ["not sorted"]),
        (Duplicates, ["duplicates", "appear once"]),
        (AsciiOnly, ["missing", "ñ", "Spanish"]),
        (Lowercased, ["missing"]),
        (OneBased, ["off by one", "start at 0"]),
        (Swapped, ["swapped"]),
        (OrdEncode, ["code points", "ord"]),
        (CharsNotIds, ["characters themselves", "self.stoi"]),
        (DecodeList, ["returned a list", "one string"]),
        (DecodeOffByOne, ["decode must undo encode"]),
        (NoItos, ["no `self.itos`"]),
        (GlobalText, ["not in the text", "`text` argument"]),
        (EncodeMutates, ["changed its input", "in place"]),
        (EncodeTensor, ["KeyError", "tensor was used as a dict key"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_tokenizer_names_classic_mistakes(buggy, fragments):
    assert_fails(check_tokenizer, buggy, *fragments)


def test_tokenizer_check_rejects_non_classes():
    assert_fails(check_tokenizer, None, "expected your CharTokenizer class")


# ----------------------------------------------------------------------------- get_batch


def stub_get_batch(data, block_size, batch_size, device="cpu"):
    raise NotImplementedError("not implemented yet: replace this line with your code")


def reference_get_batch(data, block_size, batch_size, device="cpu"):
    return data_get_batch(data, block_size, batch_size, device)


def data_get_batch(data_, block_size, batch_size, device="cpu"):
    return data.get_batch(data_, block_size, batch_size, device)


def loop_get_batch(data, block_size, batch_size, device="cpu"):
    """Correct, written differently: Python's random module and a loop; numpy slices."""
    rows_x, rows_y = [], []
    array = np.asarray(data)
    for _ in range(batch_size):
        i = random.randint(0, len(array) - block_size - 1)  # inclusive upper bound
        rows_x.append(array[i : i + block_size])
        rows_y.append(array[i + 1 : i + 1 + block_size])
    x = torch.from_numpy(np.stack(rows_x)).long()
    return x.to(device), torch.from_numpy(np.stack(rows_y)).long().to(device)


def numpy_get_batch(data, block_size, batch_size, device="cpu"):
    """Correct: numpy's global RNG and fancy indexing."""
    starts = np.random.randint(0, len(data) - block_size, size=(batch_size, 1))  # (B, 1)
    offsets = torch.from_numpy(starts + np.arange(block_size))  # (B, T)
    return data[offsets].to(device), data[offsets + 1].to(device)


def karpathy_get_batch(data, block_size, batch_size, device="cpu"):
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i : i + block_size] for i in ix])
    y = torch.stack([data[i + 1 : i + block_size + 1] for i in ix])
    x, y = x.to(device), y.to(device)
    return x, y


def _batch(start_fn, x_off=0, y_off=1, extra=0, transpose=False, dtype=None, move=True):
    """A get_batch with one thing changed: the starts, the offsets, the length, the layout..."""

    def get_batch(data, block_size, batch_size, device="cpu"):
        ix = start_fn(len(data), block_size, batch_size)
        x = torch.stack([data[i + x_off : i + x_off + block_size + extra] for i in ix])
        y = torch.stack([data[i + y_off : i + y_off + block_size + extra] for i in ix])
        if transpose:
            x, y = x.T, y.T
        if dtype is not None:
            x, y = x.to(dtype), y.to(dtype)
        return (x.to(device), y.to(device)) if move else (x, y)

    return get_batch


def good_starts(n, t, b):
    return torch.randint(n - t, (b,))


def vectorized_past_end(data, block_size, batch_size, device="cpu"):
    starts = torch.randint(len(data) - block_size + 1, (batch_size, 1))  # one too many
    offsets = starts + torch.arange(block_size)  # (B, T)
    return data[offsets].to(device), data[offsets + 1].to(device)


NOTEBOOK_DATA = torch.arange(5000)  # a notebook global a learner might reach for
NOTEBOOK_BLOCK_SIZE = 8


def id_plus_one(data, block_size, batch_size, device="cpu"):
    x = _batch(good_starts)(data, block_size, batch_size, device)[0]
    return x, x + 1  # the next id number, not the next token


def global_data(data, block_size, batch_size, device="cpu"):
    return _batch(good_starts)(NOTEBOOK_DATA, block_size, batch_size, device)


def global_block_size(data, block_size, batch_size, device="cpu"):
    return _batch(good_starts)(data, NOTEBOOK_BLOCK_SIZE, batch_size, device)


def mutates_data(data, block_size, batch_size, device="cpu"):
    batch = _batch(good_starts)(data, block_size, batch_size, device)
    data[0] = -1  # e.g. a leftover experiment writing into the tensor
    return batch


def float_starts(data, block_size, batch_size, device="cpu"):
    ix = torch.rand(batch_size) * (len(data) - block_size)
    x = torch.stack([data[i : i + block_size] for i in ix])
    return x, x


def seeded_inside(data, block_size, batch_size, device="cpu"):
    torch.manual_seed(1337)
    return _batch(good_starts)(data, block_size, batch_size, device)


def test_get_batch_stub_says_not_implemented():
    assert_fails(check_get_batch, stub, "not implemented yet")


@pytest.mark.parametrize(
    "good",
    [reference_get_batch, loop_get_batch, numpy_get_batch, karpathy_get_batch, _batch(good_starts)],
)
def test_get_batch_accepts_correct_versions(good, capsys):
    assert_passes(check_get_batch, good, capsys)


@pytest.mark.parametrize(
    "buggy, fragments",
    [
        (_batch(good_starts, y_off=0), ["y == x", "not shifted"]),
        (_batch(lambda n, t, b: torch.randint(1, n - t, (b,)), y_off=-1), ["wrong way"]),
        (_batch(good_starts, extra=1), ["one column too many"]),
        (_batch(good_starts, transpose=True), ["transposed"]),
        (_batch(lambda n, t, b: torch.zeros(b, dtype=torch.long)), ["starts at index 0"]),
        (_batch(lambda n, t, b: torch.randint(n - t, (1,)).repeat(b)), ["same window"]),
        (_batch(lambda n, t, b: torch.randint(n - t + 1, (b,))), ["RuntimeError", "last valid"]),
        (vectorized_past_end, ["IndexError", "last valid start is len(data) - block_size - 1"]),
        (_batch(lambda n, t, b: torch.randint(n - t - 1, (b,))), ["no window starts at", "exclusive"]),
        (_batch(good_starts, dtype=torch.float32), ["torch.long"]),
        (_batch(good_starts, move=False), ["ignores its device argument"]),
        (_batch(lambda n, t, b: torch.arange(b) % (n - t)), ["same batch whatever the random seed"]),
        (id_plus_one, ["plus one", "next token in the data"]),
        (global_data, ["not in the `data` passed in"]),
        (global_block_size, ["shape", "follow the block_size and batch_size arguments"]),
        (mutates_data, ["changed the data passed in"]),
        (float_starts, ["TypeError", "Likely cause"]),
        (seeded_inside, ["same batch whatever the random seed"]),
    ],
    ids=[
        "unshifted", "wrong-way", "T+1", "(T,B)", "from-0", "one-window", "past-end", "past-end-2",
        "misses-last", "float", "no-device", "not-random", "id+1", "global-data",
        "global-block-size", "mutates-data", "float-starts", "seeded-inside",
    ],
)  # fmt: skip
def test_get_batch_names_classic_mistakes(buggy, fragments):
    assert_fails(check_get_batch, buggy, *fragments)


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    check_get_batch(numpy_get_batch)
    check_get_batch(loop_get_batch)
    check_get_batch(karpathy_get_batch)
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


def test_get_batch_windows_must_be_consecutive():
    def scattered(data, block_size, batch_size, device="cpu"):
        ix = torch.randint(len(data) - 1, (batch_size, block_size))  # random tokens, not windows
        return data[ix].to(device), data[ix + 1].to(device)

    assert_fails(check_get_batch, scattered, "consecutive tokens")


def test_get_batch_y_from_another_window():
    def two_draws(data, block_size, batch_size, device="cpu"):
        x = _batch(good_starts)(data, block_size, batch_size, device)[0]
        y = _batch(good_starts)(data, block_size, batch_size, device)[1]  # a second random draw
        return x, y

    assert_fails(check_get_batch, two_draws, "same start i")
