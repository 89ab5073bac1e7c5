"""Lesson 01: the corpus (Don Quijote, Project Gutenberg #2000), the character tokenizer, batches.

Pipeline: ``download_corpus`` (cached in ``data/pg2000.txt``) -> ``clean_gutenberg`` (just the
book, no licence) -> ``CharTokenizer`` (one id per distinct character) -> a ``LongTensor`` of
ids -> ``split_data`` (first 90% train, last 10% val) -> ``get_batch`` (random windows).

Downloads are careful because a course breaks in the first five minutes if they are not: a
requests ``Session`` retries 5xx answers and connection errors with backoff (urllib3 ``Retry``),
the body is streamed to a temporary file in the cache folder and only renamed to
``pg2000.txt`` once it looks like the book (markers, size, UTF-8, not an HTML page). A valid
cached file is reused without touching the network. Every failure is a one-line ``CourseError``
that says what to do, including how to download the file by hand.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.config import default_data_dir
from shared.errors import CourseError

GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/2000/pg2000.txt"
CORPUS_FILENAME = "pg2000.txt"
URL_ENV = "GPT_COURSE_DATA_URL"
# The real book is ~2.2 MB; anything under 1 MB is a truncated download or an error page.
# Tests lower this to serve small synthetic books.
MIN_CORPUS_BYTES = 1_000_000
RETRY_BACKOFF = 0.5  # seconds; urllib3 sleeps 0, 2*b, 4*b, ... between retries
RETRY_STATUSES = (500, 502, 503, 504)
USER_AGENT = "gpt-quijote-course/0.1 (python-requests; educational use)"

_START_RE = re.compile(r"^\*\*\*\s*START OF[^\n]*\n", re.MULTILINE)
_END_RE = re.compile(r"^\*\*\*\s*END OF", re.MULTILINE)


# ----------------------------------------------------------------------------- download + cache


def corpus_url(url: str | None = None) -> str:
    """``url`` if given, else ``$GPT_COURSE_DATA_URL``, else Project Gutenberg."""
    return url or os.environ.get(URL_ENV) or GUTENBERG_URL


def corpus_path(data_dir: str | Path | None = None) -> Path:
    """Where the raw book is cached: ``<data_dir>/pg2000.txt`` (default: ``data/`` at the root)."""
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return folder / CORPUS_FILENAME


def _by_hand(url: str, path: Path) -> str:
    return f"or download it by hand: open {url} in a browser and save it as {path}"


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validate_raw(data: bytes) -> str:
    """Return the decoded text if ``data`` looks like the Gutenberg book, else raise ``ValueError``.

    Structure, not a checksum: Gutenberg re-releases this file now and then.
    """
    head = data[:2048].lower()
    if b"<html" in head or b"<!doctype html" in head:
        raise ValueError(
            "it is an HTML page, not the plain-text book (a rate-limit or error page?)"
        )
    if len(data) < MIN_CORPUS_BYTES:
        raise ValueError(f"it is only {len(data):,} bytes, expected at least {MIN_CORPUS_BYTES:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    start = _START_RE.search(text)
    if start is None:
        raise ValueError("it has no '*** START OF ...' line, so it is not a Project Gutenberg text")
    if _END_RE.search(text, start.end()) is None:
        raise ValueError("it has no '*** END OF ...' line (a truncated download?)")
    return text


def _check_cached(path: Path) -> str | None:
    """``None`` when the cached file is valid, else the reason it is not."""
    try:
        validate_raw(path.read_bytes())
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"it cannot be read ({_one_line(exc)})"
    return None


def _session(retries: int, backoff: float):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,  # hand us the last 5xx answer so we can name its status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _tries(retries: int) -> str:
    return "1 try" if retries <= 0 else f"{retries + 1} tries"


def _describe_request_error(exc, url: str, retries: int) -> str:
    """A short reason and fix for a requests failure (its own messages run to hundreds of chars)."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    # After retries, a read timeout arrives as ConnectionError(MaxRetryError(reason=ReadTimeoutError)).
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # (NewConnectionError, e.g. "connection refused", subclasses urllib3's TimeoutError.)
    timed_out = isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)
    if isinstance(exc, requests.Timeout) or timed_out:
        return f"timed out downloading {url} after {_tries(retries)}; try again later"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"the download from {url} was cut off before the end; try again"
    if isinstance(exc, requests.ConnectionError):
        errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        why = errno.group(1).strip() if errno else _one_line(exc, 120)
        return (
            f"could not connect to {url} ({why}) after {_tries(retries)}; "
            "check your internet connection and run again"
        )
    return f"could not download {url} ({_one_line(exc, 120)}); check the URL (--url / ${URL_ENV})"


def _fetch(url: str, folder: Path, timeout, retries: int, backoff: float) -> Path:
    """Stream ``url`` into a temporary file in ``folder``; return it once validated."""
    import requests

    fd, tmp_name = tempfile.mkstemp(prefix=f".{CORPUS_FILENAME}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _session(retries, backoff) as session:
            with session.get(url, stream=True, timeout=timeout) as response:
                status = response.status_code
                if status in RETRY_STATUSES:
                    raise CourseError(
                        f"the server answered {status} {response.reason} for {url} "
                        f"after {_tries(retries)}; try again later"
                    )
                if status >= 400:
                    raise CourseError(
                        f"the server answered {status} {response.reason} for {url}; "
                        f"check the URL (--url / ${URL_ENV})"
                    )
                if "html" in response.headers.get("Content-Type", "").lower():
                    raise ValueError("the server sent an HTML page (a rate-limit or error page?)")
                # requests/urllib3 raise if the body is shorter than Content-Length.
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
        validate_raw(tmp.read_bytes())
        return tmp
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # never leave a partial or invalid file in the cache
        if isinstance(exc, requests.RequestException):  # before ValueError: InvalidURL is both
            raise CourseError(_describe_request_error(exc, url, retries)) from None
        if isinstance(exc, ValueError):
            raise CourseError(
                f"the file downloaded from {url} is not the book: {exc}; try again later"
            ) from None
        raise


def download_corpus(
    url: str | None = None,
    data_dir: str | Path | None = None,
    *,
    timeout: float | tuple[float, float] = (10, 60),
    retries: int = 3,
    backoff: float | None = None,
) -> Path:
    """Return the path of the cached raw book, downloading it first if needed.

    ``timeout`` is requests' (connect, read) in seconds; ``retries`` applies to connection
    errors, timeouts and 5xx answers, with exponential ``backoff`` (default ``RETRY_BACKOFF``).
    """
    url = corpus_url(url)
    path = corpus_path(data_dir)
    stale = None
    if path.exists():
        stale = _check_cached(path)
        if stale is None:
            return path  # valid cache: no network at all
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CourseError(
            f"cannot create the data folder {path.parent} ({_one_line(exc)}); "
            "choose another with --data-dir or $GPT_COURSE_DATA_DIR"
        ) from None
    if stale is not None:
        path.unlink(missing_ok=True)  # invalid: it must not be mistaken for the book later
        print(f"the cached {path.name} is invalid ({stale}); downloading it again")
    print(f"downloading {url} ...")
    try:
        tmp = _fetch(
            url, path.parent, timeout, retries, RETRY_BACKOFF if backoff is None else backoff
        )
    except CourseError as exc:
        fix = _by_hand(url, path)
        if stale is not None:
            raise CourseError(
                f"the cached corpus {path} was invalid ({stale}) and was removed; "
                f"downloading it again failed: {exc}, {fix}"
            ) from None
        raise CourseError(f"{exc}, {fix}") from None
    except OSError as exc:
        raise CourseError(
            f"cannot write the corpus into {path.parent} ({_one_line(exc)}); "
            "choose another folder with --data-dir or $GPT_COURSE_DATA_DIR"
        ) from None
    os.replace(tmp, path)  # atomic: readers see either no file or the whole book
    return path


# ----------------------------------------------------------------------------- cleaning


def clean_gutenberg(raw: str) -> str:
    """Just the book: drop the BOM, CRLF -> LF, keep the text between the START and END lines."""
    text = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    start = _START_RE.search(text)
    if start is None:
        raise CourseError(
            "the corpus has no '*** START OF ...' line; delete it and download it again"
        )
    end = _END_RE.search(text, start.end())
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
        if not all(isinstance(ch, str) and len(ch) == 1 for ch in chars) or len(set(chars)) != len(
            chars
        ):
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
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CourseError(f"cannot read the tokenizer {path} ({_one_line(exc)})") from None
        return cls.from_dict(data)


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


# ----------------------------------------------------------------------------- CLI


def _data_command(args) -> int:
    timeout = (10, 60) if args.timeout is None else (min(10, args.timeout), args.timeout)
    download_corpus(args.url, args.data_dir, timeout=timeout, retries=args.retries)
    corpus = load_corpus(data_dir=args.data_dir, url=args.url)  # reuses the validated cache
    print(f"corpus: {len(corpus.text):,} characters (Don Quijote, Project Gutenberg #2000)")
    print(f"vocab size: {corpus.vocab_size}")
    print(f"train: {len(corpus.train_data):,} tokens, val: {len(corpus.val_data):,} tokens")
    print(f"cached at: {corpus.path}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="download (or reuse) the corpus and print its statistics"
    )
    parser.add_argument(
        "--url", help=f"where to download the book (default: ${URL_ENV} or Gutenberg)"
    )
    parser.add_argument("--data-dir", help="cache folder (default: $GPT_COURSE_DATA_DIR or data/)")
    parser.add_argument("--timeout", type=float, help="read timeout in seconds (default: 60)")
    parser.add_argument("--retries", type=int, default=3, help="retries on 5xx/connection errors")
    parser.set_defaults(func=_data_command)
