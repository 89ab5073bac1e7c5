"""The corpus download against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Each test serves a small synthetic Gutenberg-style book (BOM, CRLF, Spanish characters,
START/END markers) and checks the cache folder afterwards: either the valid book is there,
or nothing at all (no pg2000.txt, no temporary files).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import shared.data as data
import shared.engine.download as download
from shared.engine.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent

BOOK_TEXT = (
    "El ingenioso hidalgo don Quijote de la Mancha\n\n"
    "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo\n"
    "que vivía un hidalgo de los de lanza en astillero, adarga antigua, rocín flaco y\n"
    "galgo corredor. ¿Quién es? ¡Señor! Años, niñería, pingüino, «comillas» — Fin"
)


def gutenberg_bytes(body: str = BOOK_TEXT, *, end_marker: bool = True, repeat: int = 1) -> bytes:
    """A file shaped like Gutenberg's: BOM, header, START line, the book, END line, licence; CRLF."""
    text = (
        "\ufeffThe Project Gutenberg eBook of Don Quijote\n\nLanguage: Spanish\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK DON QUIJOTE ***\n\n\n"
        + "\n\n".join([body] * repeat)
        + "\n\n\n"
    )
    if end_marker:
        text += "*** END OF THE PROJECT GUTENBERG EBOOK DON QUIJOTE ***\n\nLicence text here.\n"
    return text.replace("\n", "\r\n").encode("utf-8")


BOOK = gutenberg_bytes()


class Handler(BaseHTTPRequestHandler):
    """Looks up what to do for the path in ``server.routes``; counts requests per path."""

    def do_GET(self):  # noqa: N802 - http.server API
        with self.server.lock:
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
            count = self.server.hits[self.path]
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                self.reply(404, b"not found")
            else:
                route(self, count)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def reply(self, status, body, content_type="text/plain; charset=utf-8", length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


class Server:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.routes, self.httpd.hits, self.httpd.lock = {}, {}, threading.Lock()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path="/pg2000.txt"):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def route(self, path, fn):
        self.httpd.routes[path] = fn
        return self.url(path)

    def hits(self, path="/pg2000.txt"):
        return self.httpd.hits.get(path, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def small_books(monkeypatch):
    """Synthetic books are a few hundred bytes; no sleeping between retries."""
    monkeypatch.setattr(download, "MIN_CORPUS_BYTES", 200)
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)
    monkeypatch.delenv(download.URL_ENV, raising=False)


def serve_book(book=BOOK):
    return lambda handler, count: handler.reply(200, book)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/pg2000.txt"  # nothing listens there any more


def assert_cache_empty(folder: Path):
    leftovers = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert leftovers == [], f"invalid files left in the cache: {leftovers}"


def expected_clean_text() -> str:
    return BOOK_TEXT  # between the markers, LF line ends, no BOM, stripped


# ----------------------------------------------------------------------------- success paths


def test_download_saves_the_book_and_load_text_cleans_it(server, tmp_path):
    url = server.route("/pg2000.txt", serve_book())
    path = download.download_corpus(url, tmp_path)
    assert path == tmp_path / download.CORPUS_FILENAME
    assert path.read_bytes() == BOOK
    assert sorted(p.name for p in tmp_path.iterdir()) == [download.CORPUS_FILENAME]  # no temp files
    text = data.load_text(tmp_path, url)
    assert text == expected_clean_text()
    assert "\r" not in text and "\ufeff" not in text and "ñ" in text


def test_retries_server_errors_then_succeeds(server, tmp_path):
    def flaky(handler, count):
        if count <= 2:
            handler.reply(503, b"busy, try later")
        else:
            handler.reply(200, BOOK)

    url = server.route("/pg2000.txt", flaky)
    path = download.download_corpus(url, tmp_path, retries=3)
    assert path.read_bytes() == BOOK
    assert server.hits() == 3


def test_valid_cache_is_reused_without_any_request(server, tmp_path):
    url = server.route("/pg2000.txt", serve_book())
    download.download_corpus(url, tmp_path)
    assert server.hits() == 1
    download.download_corpus(url, tmp_path)
    assert server.hits() == 1  # the second call never asked the server
    server.stop()
    # Offline (nothing listening): still fine, and the text is the same.
    assert data.load_text(tmp_path, closed_port_url()) == expected_clean_text()


def test_corrupted_cache_is_downloaded_again(server, tmp_path):
    (tmp_path / download.CORPUS_FILENAME).write_bytes(BOOK[: len(BOOK) // 2])  # cut before END
    url = server.route("/pg2000.txt", serve_book())
    path = download.download_corpus(url, tmp_path)
    assert path.read_bytes() == BOOK
    assert server.hits() == 1


def test_abandoned_temporary_files_are_cleaned_up(server, tmp_path):
    old = tmp_path / f".{download.CORPUS_FILENAME}.dead.part"  # from a download killed hard
    fresh = tmp_path / f".{download.CORPUS_FILENAME}.live.part"  # maybe another download, running
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    download.download_corpus(server.route("/pg2000.txt", serve_book()), tmp_path)
    assert not old.exists() and fresh.exists()


def test_url_and_data_dir_come_from_the_environment(server, tmp_path, monkeypatch):
    url = server.route("/mirror.txt", serve_book())
    monkeypatch.setenv(download.URL_ENV, url)
    monkeypatch.setenv("GPT_COURSE_DATA_DIR", str(tmp_path / "cache"))
    path = download.download_corpus()
    assert path == tmp_path / "cache" / download.CORPUS_FILENAME
    assert path.read_bytes() == BOOK and server.hits("/mirror.txt") == 1


# ----------------------------------------------------------------------------- failures


def fails(url, folder, match, **kwargs) -> str:
    with pytest.raises(CourseError, match=match) as info:
        download.download_corpus(url, folder, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    # Every failure says how to get the file by hand, into the right place.
    assert f"save it as {folder / download.CORPUS_FILENAME}" in message
    assert_cache_empty(folder)
    return message


def test_404_is_not_retried(server, tmp_path):
    url = server.url("/missing.txt")
    message = fails(url, tmp_path, "404", retries=3)
    assert "check the URL" in message
    assert server.hits("/missing.txt") == 1


def test_rate_limit_429_is_not_retried_and_says_wait(server, tmp_path):
    url = server.route("/pg2000.txt", lambda h, c: h.reply(429, b"slow down"))
    fails(url, tmp_path, "refused the download .*wait a few minutes", retries=3)
    assert server.hits() == 1


@pytest.mark.timeout(30)  # honouring "Retry-After: 3600" would hang here
def test_retry_after_header_does_not_stall(server, tmp_path):
    def busy(handler, count):
        handler.send_response(503)
        handler.send_header("Retry-After", "3600")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    url = server.route("/pg2000.txt", busy)
    fails(url, tmp_path, "503", retries=1)
    assert server.hits() == 2


def test_500_after_retries_are_exhausted(server, tmp_path):
    url = server.route("/pg2000.txt", lambda h, c: h.reply(500, b"oops"))
    fails(url, tmp_path, r"500 .*after 3 tries", retries=2)
    assert server.hits() == 3


def test_read_timeout(server, tmp_path):
    def slow(handler, count):
        time.sleep(1.0)
        handler.reply(200, BOOK)

    url = server.route("/pg2000.txt", slow)
    fails(url, tmp_path, "timed out", timeout=(1.0, 0.2), retries=1)
    assert server.hits() == 2  # a timeout is retried like a connection error


def test_connection_refused(tmp_path):
    fails(closed_port_url(), tmp_path, r"could not connect .*after 2 tries", retries=1)


def test_html_page_with_status_200(server, tmp_path):
    page = (
        b"<!DOCTYPE html><html><body>Too many requests, slow down." + b" " * 500 + b"</body></html>"
    )
    url = server.route("/pg2000.txt", lambda h, c: h.reply(200, page, "text/html; charset=utf-8"))
    fails(url, tmp_path, "HTML page")


def test_html_page_served_as_plain_text(server, tmp_path):
    page = b"<html><head><title>Rate limit</title></head>" + b" " * 500 + b"</html>"
    url = server.route("/pg2000.txt", lambda h, c: h.reply(200, page))
    fails(url, tmp_path, "HTML page")


def test_body_shorter_than_content_length(server, tmp_path):
    cut = BOOK[: len(BOOK) - 40]
    url = server.route("/pg2000.txt", lambda h, c: h.reply(200, cut, length=len(BOOK)))
    fails(url, tmp_path, "cut off")


def test_missing_end_marker(server, tmp_path):
    url = server.route("/pg2000.txt", serve_book(gutenberg_bytes(end_marker=False, repeat=2)))
    fails(url, tmp_path, "END OF")


def test_too_small_file(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MIN_CORPUS_BYTES", 10_000)
    url = server.route("/pg2000.txt", serve_book())
    fails(url, tmp_path, f"only {len(BOOK):,} bytes")


def test_not_utf8(server, tmp_path):
    latin1 = gutenberg_bytes().decode("utf-8").encode("latin-1", errors="replace")
    url = server.route("/pg2000.txt", serve_book(latin1))
    fails(url, tmp_path, "not valid UTF-8")


def test_corrupted_cache_and_failed_download(tmp_path):
    (tmp_path / download.CORPUS_FILENAME).write_bytes(b"<html>oops</html>")
    message = fails(closed_port_url(), tmp_path, "was invalid", retries=0)
    assert "removed" in message and "could not connect" in message


def test_data_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(CourseError, match="cannot create the data folder .*`data_dir`"):
        download.download_corpus(closed_port_url(), blocker / "data")


# ----------------------------------------------------------------------------- the CLI


def run_cli(*args):
    """``python -m shared data ...`` in a real subprocess (slow-ish: the CLI imports torch)."""
    env = {k: v for k, v in os.environ.items() if k != download.URL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "shared", "data", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )


def cli_in_process(capsys, *args) -> tuple[int, str]:
    """The same CLI entry point, in this process (fast; monkeypatched settings apply)."""
    from shared.__main__ import main

    code = main(["data", *args])
    return code, capsys.readouterr().err


def assert_one_error_line(code: int, stderr: str) -> str:
    assert code != 0
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_cli_failure_in_a_subprocess_is_one_error_line(server, tmp_path):
    url = server.route("/pg2000.txt", lambda h, c: h.reply(404, b"nope"))
    result = run_cli("--url", url, "--data-dir", str(tmp_path), "--retries", "1")
    line = assert_one_error_line(result.returncode, result.stderr)
    assert "Traceback" not in result.stdout
    assert "404" in line and f"save it as {tmp_path / download.CORPUS_FILENAME}" in line
    assert_cache_empty(tmp_path)


@pytest.mark.parametrize(
    "route, match",
    [
        (lambda h, c: h.reply(503, b"busy"), "503 Service Unavailable .* after 2 tries"),
        (lambda h, c: h.reply(200, b"<html>" + b" " * 2000, "text/html"), "HTML page"),
        (lambda h, c: h.reply(200, BOOK[:-60], length=len(BOOK)), "cut off"),
        (lambda h, c: (time.sleep(1.0), h.reply(200, BOOK)), "timed out"),
    ],
    ids=["503", "html", "truncated", "timeout"],
)
def test_cli_failures(server, tmp_path, capsys, route, match):
    url = server.route("/pg2000.txt", route)
    args = ["--url", url, "--data-dir", str(tmp_path), "--retries", "1", "--timeout", "0.2"]
    line = assert_one_error_line(*cli_in_process(capsys, *args))
    assert re.search(match, line) and "in a browser" in line
    assert_cache_empty(tmp_path)


def test_cli_unreachable(tmp_path, capsys):
    args = ["--url", closed_port_url(), "--data-dir", str(tmp_path), "--retries", "0"]
    line = assert_one_error_line(*cli_in_process(capsys, *args))
    assert "could not connect" in line and "after 1 try;" in line
    assert_cache_empty(tmp_path)


def test_cli_success_then_offline(server, tmp_path, capsys, monkeypatch):
    big = gutenberg_bytes(repeat=4000)  # > 1 MB: the CLI runs with the real minimum size
    assert len(big) > 1_000_000  # the module default, which the subprocess uses
    url = server.route("/pg2000.txt", serve_book(big))
    result = run_cli("--url", url, "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = "\n\n".join([BOOK_TEXT] * 4000)
    assert f"corpus: {len(text):,} characters" in result.stdout
    assert f"vocab size: {len(set(text))}" in result.stdout
    n_train = int(0.9 * len(text))
    assert f"train: {n_train:,} tokens, val: {len(text) - n_train:,} tokens" in result.stdout
    assert str(tmp_path / download.CORPUS_FILENAME) in result.stdout
    server.stop()
    monkeypatch.setattr(download, "MIN_CORPUS_BYTES", 1_000_000)
    from shared.__main__ import main

    assert main(["data", "--url", url, "--data-dir", str(tmp_path)]) == 0
    offline = capsys.readouterr().out
    assert "downloading" not in offline and f"vocab size: {len(set(text))}" in offline


@pytest.mark.parametrize(
    "args, allowed", [(["--retries", "-1"], "must be >= 0"), (["--timeout", "0"], "must be > 0")]
)
def test_cli_rejects_bad_numbers(tmp_path, capsys, args, allowed):
    line = assert_one_error_line(*cli_in_process(capsys, "--data-dir", str(tmp_path), *args))
    assert args[0] in line and allowed in line
    assert_cache_empty(tmp_path)
