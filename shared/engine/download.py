"""Download Don Quijote (Project Gutenberg #2000) once, carefully, into the data cache.

A course breaks in its first five minutes if this goes wrong, so: a requests ``Session`` retries
5xx answers, connection errors and timeouts with exponential backoff (urllib3 ``Retry``, mounted
on an ``HTTPAdapter``); the body is streamed to a temporary file in the cache folder and renamed
to ``pg2000.txt`` (atomically, ``os.replace``) only once it looks like the book: START/END
markers, a plausible size, valid UTF-8, not an HTML page. Gutenberg re-releases the file now and
then, so we validate its structure, not a checksum. A valid cached file is reused without
touching the network; an invalid one is removed and downloaded again. Every failure is a
one-line ``CourseError`` that says what to do, including how to download the file by hand.

``shared.data`` re-exports ``download_corpus`` and the constants; lessons import from there.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from shared.engine.config import default_data_dir
from shared.engine.errors import CourseError, one_line
from shared.engine.tempfiles import remove_abandoned, temp_prefix

GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/2000/pg2000.txt"
CORPUS_FILENAME = "pg2000.txt"
URL_ENV = "GPT_COURSE_DATA_URL"
# The real book is ~2.2 MB; anything under 1 MB is a truncated download or an error page.
# Tests lower this to serve small synthetic books.
MIN_CORPUS_BYTES = 1_000_000
# Anything over 20 MB is not this book (a wrong URL, a zip, an endless stream): refused while
# streaming, so it never fills the disk or memory. Tests lower it.
MAX_CORPUS_BYTES = 20_000_000
EBOOK_NUMBER = 2000
RETRY_BACKOFF = 0.5  # seconds; urllib3 sleeps 0, 2*b, 4*b, ... between retries
RETRY_STATUSES = (500, 502, 503, 504)
USER_AGENT = "gpt-quijote-course/0.1 (python-requests; educational use)"

START_RE = re.compile(r"^\*\*\*\s*START OF[^\n]*\n", re.MULTILINE)
END_RE = re.compile(r"^\*\*\*\s*END OF", re.MULTILINE)


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
    start = START_RE.search(text)
    if start is None:
        raise ValueError("it has no '*** START OF ...' line, so it is not a Project Gutenberg text")
    if END_RE.search(text, start.end()) is None:
        raise ValueError("it has no '*** END OF ...' line (a truncated download?)")
    check_is_quijote(text[: start.end()])
    return text


def check_is_quijote(header: str) -> None:
    """The Gutenberg header (up to the START line) must name Don Quijote or ebook #2000."""
    if re.search(r"quijote|quixote", header, re.IGNORECASE) or re.search(
        rf"ebook\s*#\s*{EBOOK_NUMBER}\b", header, re.IGNORECASE
    ):
        return
    title = re.search(r"^\s*Title:\s*(.+)$", header, re.MULTILINE) or re.search(
        r"eBook of (.+)$", header, re.MULTILINE
    )
    number = re.search(r"ebook\s*#\s*(\d+)", header, re.IGNORECASE)
    what = f"'{one_line(title.group(1), 60)}'" if title else "another book"
    what += f" (#{number.group(1)})" if number else ""
    raise ValueError(
        f"it is {what}, not Don Quijote (Project Gutenberg #{EBOOK_NUMBER}); "
        f"check the URL (`url` / ${URL_ENV})"
    )


def _check_cached(path: Path) -> str | None:
    """``None`` when the cached file is valid, else the reason it is not."""
    try:
        _refuse_if_too_big(path.stat().st_size)  # before reading it all into memory
        validate_raw(path.read_bytes())
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"it cannot be read ({one_line(exc)})"
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
        respect_retry_after_header=False,  # a "Retry-After: 3600" must not hang a notebook
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

    # After retries, a read timeout arrives as ConnectionError(MaxRetryError(reason=ReadTimeoutError));
    # one while the body streams, as ConnectionError(ReadTimeoutError).
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None) or cause
    # (NewConnectionError, e.g. "connection refused", subclasses urllib3's TimeoutError.)
    timed_out = isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)
    if isinstance(exc, requests.Timeout) or timed_out:
        return f"timed out downloading {url} after {_tries(retries)}; try again later"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"the download from {url} was cut off before the end; try again"
    if isinstance(exc, requests.ConnectionError):
        errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        why = errno.group(1).strip() if errno else one_line(exc, 120)
        return (
            f"could not connect to {url} ({why}) after {_tries(retries)}; "
            "check your internet connection and run again"
        )
    return f"could not download {url} ({one_line(exc, 120)}); check the URL (`url` / ${URL_ENV})"


def _fetch(url: str, folder: Path, timeout, retries: int, backoff: float) -> Path:
    """Stream ``url`` into a temporary file in ``folder``; return it once validated."""
    import requests

    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(CORPUS_FILENAME), suffix=".part", dir=folder)
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
                if status in (403, 429):
                    raise CourseError(
                        f"the server refused the download ({status} {response.reason}) for "
                        f"{url}; it may be limiting automated downloads: wait a few minutes "
                        "and run again"
                    )
                if status >= 400:
                    raise CourseError(
                        f"the server answered {status} {response.reason} for {url}; "
                        f"check the URL (`url` / ${URL_ENV})"
                    )
                if "html" in response.headers.get("Content-Type", "").lower():
                    raise ValueError("the server sent an HTML page (a rate-limit or error page?)")
                _refuse_if_too_big(response.headers.get("Content-Length", ""))
                received = 0
                for chunk in response.iter_content(chunk_size=1 << 16):
                    received += out.write(chunk)
                    _refuse_if_too_big(received)
                # urllib3 2 raises on a body shorter than Content-Length; urllib3 1.26 does not.
                expected = response.headers.get("Content-Length", "")
                plain = response.headers.get("Content-Encoding", "identity") == "identity"
                if plain and expected.isdigit() and received != int(expected):
                    raise requests.exceptions.ChunkedEncodingError("body shorter than promised")
        validate_raw(tmp.read_bytes())
        return tmp
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # never leave a partial or invalid file in the cache
        if isinstance(exc, requests.RequestException):  # before ValueError: InvalidURL is both
            raise CourseError(_describe_request_error(exc, url, retries)) from None
        if isinstance(exc, ValueError):
            fix = "" if "check the URL" in str(exc) else "; try again later"
            raise CourseError(
                f"the file downloaded from {url} is not the book: {exc}{fix}"
            ) from None
        raise


def _refuse_if_too_big(size: int | str) -> None:
    """Stop a body far larger than the book before it is all read (Content-Length or so far)."""
    if isinstance(size, str):
        size = int(size) if size.isdigit() else 0
    if size > MAX_CORPUS_BYTES:
        raise ValueError(
            f"it is over {MAX_CORPUS_BYTES:,} bytes ({size:,}), the book is about 2 MB; "
            f"check the URL (`url` / ${URL_ENV})"
        )


def _refuse_if_not_web(url: str, path: Path) -> None:
    """Only http(s) downloads: a local file (``file://``, a path) is copied into the cache."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise CourseError(
            f"`url` {url} is not a web address (http:// or https://); to use a copy of the book "
            f"you already have, copy the file to {path} (the cache; `data_dir` picks its folder)"
        )


def _remove_abandoned_parts(folder: Path) -> None:
    """Temporary files of downloads killed hard (no cleanup ran): their process is gone."""
    remove_abandoned(folder, CORPUS_FILENAME, ".part")


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
            f"cannot create the data folder {path.parent} ({one_line(exc)}); "
            "choose another with `data_dir` or $GPT_COURSE_DATA_DIR"
        ) from None
    if stale is not None:
        try:
            path.unlink(missing_ok=True)  # invalid: it must not be mistaken for the book later
        except OSError as exc:
            raise CourseError(
                f"the cached corpus {path} is invalid ({stale}) and cannot be removed "
                f"({one_line(exc)}); delete it by hand and run again"
            ) from None
        print(f"the cached {path.name} is invalid ({stale}); downloading it again")
    _refuse_if_not_web(url, path)
    _remove_abandoned_parts(path.parent)
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
            f"cannot write the corpus into {path.parent} ({one_line(exc)}); "
            "choose another folder with `data_dir` or $GPT_COURSE_DATA_DIR"
        ) from None
    try:
        os.replace(tmp, path)  # atomic: readers see either no file or the whole book
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CourseError(
            f"cannot save the corpus as {path} ({one_line(exc)}); "
            "choose another folder with `data_dir` or $GPT_COURSE_DATA_DIR"
        ) from None
    return path
