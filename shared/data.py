"""Lesson 01: the corpus (Don Quijote, Project Gutenberg #2000), the character tokenizer, batches.

Pipeline: ``download_corpus`` (cached in ``data/pg2000.txt``, see ``shared.engine.download``) ->
``clean_gutenberg`` (just the book, no licence) -> ``CharTokenizer`` (one id per distinct
character) -> a ``LongTensor`` of ids -> ``split_data`` (first 90% train, last 10% val) ->
``get_batch`` (random windows of ``block_size`` ids and the same windows shifted by one).
``load_corpus`` does it all and returns a ``Corpus``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.engine.download import END_RE, START_RE, download_corpus
from shared.engine.errors import CourseError, one_line

# ----------------------------------------------------------------------------- cleaning


def clean_gutenberg(raw: str) -> str:
    """Just the book: drop the BOM, CRLF -> LF, keep the text between the START and END lines."""
    text = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    start = START_RE.search(text)
    if start is None:
        raise CourseError(
            "the corpus has no '*** START OF ...' line; delete it and download it again"
        )
    end = END_RE.search(text, start.end())
    if end is None:
        raise CourseError(
            "the corpus has no '*** END OF ...' line; delete it and download it again"
        )
    return text[start.end() : end.start()].strip()


def load_text(data_dir: str | Path | None = None, url: str | None = None) -> str:
    """The cleaned book as one string (downloads and caches it if needed)."""
    path = download_corpus(url=url, data_dir=data_dir)
    return clean_gutenberg(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- tokenizer


class CharTokenizer:
    """One token per character: ids are positions in the sorted list of distinct characters."""

    def __init__(self, text: str):
        self._set_chars(sorted(set(text)))

    @classmethod
    def from_chars(cls, chars) -> CharTokenizer:
        """A tokenizer with exactly this vocabulary, in this order (e.g. loaded from JSON)."""
        chars = list(chars)
        single = all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
        if not single or len(set(chars)) != len(chars):
            raise CourseError("a character vocabulary must be distinct single characters")
        tokenizer = cls.__new__(cls)
        tokenizer._set_chars(chars)
        return tokenizer

    def _set_chars(self, chars: list[str]) -> None:
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}  # string -> id
        self.itos = {i: ch for i, ch in enumerate(chars)}  # id -> string

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """``"hola"`` -> ``[ids]``; characters outside the vocabulary raise a ``CourseError``."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            unknown = sorted(set(text) - self.stoi.keys())
            shown = ", ".join(repr(ch) for ch in unknown[:20]) + (
                " ..." if len(unknown) > 20 else ""
            )
            raise CourseError(
                f"{len(unknown)} character(s) not in the vocabulary: {shown}; "
                "remove them from the text or build the tokenizer from text that contains them"
            ) from None

    def decode(self, ids) -> str:
        """``[ids]`` (a list or a 1-D tensor) -> ``"hola"``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as exc:
            raise CourseError(
                f"token id {exc.args[0]} is outside 0..{self.vocab_size - 1}"
            ) from None

    def to_dict(self) -> dict:
        return {"type": "char", "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        if not isinstance(data, dict) or data.get("type") != "char" or "chars" not in data:
            raise CourseError(
                "not a saved CharTokenizer (expected {'type': 'char', 'chars': [...]})"
            )
        return cls.from_chars(data["chars"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return cls.from_dict(read_tokenizer_file(path))


def read_tokenizer_file(path: str | Path) -> dict:
    """A saved tokenizer's dict (any kind); an unreadable file is one clear ``CourseError``."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CourseError(f"cannot read the tokenizer {path} ({one_line(exc)})") from None


# ----------------------------------------------------------------------------- split + batches


def split_data(data: torch.Tensor, train_frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``train_frac`` of the ids for training, the rest for validation (no shuffling:
    the validation text is a later part of the book the model never saw)."""
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must be between 0 and 1, got {train_frac}")
    n = int(train_frac * len(data))
    return data[:n], data[n:]


def get_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size`` ids, and the same windows shifted by one.

    Returns ``x, y`` of shape ``(B, T)``: ``y[b, t]`` is the id that follows ``x[b, t]``.
    """
    if len(data) <= block_size:
        raise CourseError(f"need more than block_size={block_size} tokens, got {len(data)}")
    # The last window starts at len - block_size - 1, so its target still fits.
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = starts[:, None] + torch.arange(block_size)  # (B, T)
    x = data[offsets]  # (B, T)
    y = data[offsets + 1]  # (B, T)
    return x.to(device), y.to(device)


@dataclass
class Corpus:
    """Everything lessons and training need: the text, its tokenizer, and the encoded splits."""

    text: str
    tokenizer: CharTokenizer
    train_data: torch.Tensor  # (N_train,) long
    val_data: torch.Tensor  # (N_val,) long
    path: Path | None = None  # the cached raw file

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def load_corpus(data_dir: str | Path | None = None, url: str | None = None) -> Corpus:
    """Download (or reuse) the book, clean it, tokenize it and split it 90/10."""
    path = download_corpus(url=url, data_dir=data_dir)
    text = clean_gutenberg(path.read_text(encoding="utf-8"))
    tokenizer = CharTokenizer(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_data, val_data = split_data(data)
    return Corpus(text, tokenizer, train_data, val_data, path)
