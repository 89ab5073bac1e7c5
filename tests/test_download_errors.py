"""Issue #15 for downloads: timeouts named as timeouts, oversized bodies refused while streaming,
another Gutenberg book refused by its header, abandoned temporaries cleaned at the next start.

Uses the 127.0.0.1 test server of ``test_data_download`` (Gutenberg is never contacted).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_data_download import BOOK, Server, closed_port_url, fails, gutenberg_bytes

import shared.engine.download as download
from shared.engine.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent


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


def test_a_read_timeout_while_the_body_streams_is_called_a_timeout(server, tmp_path):
    def stalls_mid_body(handler, count):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(BOOK)))
        handler.end_headers()
        handler.wfile.write(BOOK[:100])
        handler.wfile.flush()
        time.sleep(1.0)

    url = server.route("/pg2000.txt", stalls_mid_body)
    message = fails(url, tmp_path, "timed out", timeout=(1.0, 0.2), retries=0)
    assert "could not connect" not in message


def test_a_huge_content_length_is_refused_before_reading(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_CORPUS_BYTES", 10_000)
    url = server.route(
        "/pg2000.txt", lambda h, c: h.reply(200, BOOK, length=50_000_000_000)
    )  # 50 GB promised; only a few hundred bytes ever sent: reading them all would hang
    message = fails(url, tmp_path, "over 10,000 bytes", timeout=(1.0, 5.0), retries=0)
    assert "check the URL" in message and "try again later" not in message


def test_an_endless_body_without_a_length_is_cut_off(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_CORPUS_BYTES", 100_000)

    def endless(handler, count):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()  # no Content-Length: the body ends when the server closes
        for _ in range(1000):  # 64 MB if nobody stops reading
            handler.wfile.write(b"a" * 65536)

    url = server.route("/pg2000.txt", endless)
    fails(url, tmp_path, "over 100,000 bytes", timeout=(1.0, 5.0), retries=0)


def test_a_huge_cached_file_is_not_read_into_memory(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_CORPUS_BYTES", 10_000)
    cached = tmp_path / download.CORPUS_FILENAME
    with open(cached, "wb") as handle:
        handle.truncate(10_001)  # sparse: no disk space used
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the huge file"))
    with pytest.raises(CourseError, match="over 10,000 bytes"):
        download.download_corpus(closed_port_url(), tmp_path, retries=0)


MOBY_DICK = (
    gutenberg_bytes()
    .decode("utf-8")
    .replace("eBook of Don Quijote", "eBook of Moby Dick; Or, The Whale")
    .replace("Language: Spanish", "Title: Moby Dick; Or, The Whale\r\n\r\n[eBook #2701]")
    .replace("EBOOK DON QUIJOTE", "EBOOK MOBY DICK")
    .encode("utf-8")
)


def test_another_gutenberg_book_is_refused_by_its_header(server, tmp_path):
    url = server.route("/pg2000.txt", lambda h, c: h.reply(200, MOBY_DICK))
    message = fails(url, tmp_path, "not Don Quijote", retries=0)
    assert "'Moby Dick; Or, The Whale' (#2701)" in message and "check the URL" in message


def test_the_header_check_accepts_the_real_book_and_ebook_numbers():
    real = ROOT / "data" / download.CORPUS_FILENAME
    if real.is_file():  # gitignored: present on developer machines and in CI after `data`
        header = real.read_text(encoding="utf-8")[:3000]
        download.check_is_quijote(header)
    download.check_is_quijote("The Project Gutenberg EBook of El ingenioso hidalgo [EBook #2000]")
    with pytest.raises(ValueError, match="#20001"):
        download.check_is_quijote("Title: Something\n[eBook #20001]\n")


def test_a_part_file_of_a_killed_download_is_removed_at_once(server, tmp_path):
    dead = tmp_path / f".{download.CORPUS_FILENAME}.999999999.x1y2.part"  # pid not running
    mine_running = tmp_path / f".{download.CORPUS_FILENAME}.{os.getppid()}.x1y2.part"
    dead.write_bytes(b"partial")
    mine_running.write_bytes(b"partial")  # the parent process is alive: maybe downloading
    download.download_corpus(server.route("/pg2000.txt", lambda h, c: h.reply(200, BOOK)), tmp_path)
    assert not dead.exists() and mine_running.exists()
    assert (tmp_path / download.CORPUS_FILENAME).read_bytes() == BOOK


@pytest.mark.parametrize("url", ["file:///tmp/pg2000.txt", "/home/me/pg2000.txt", "ftp://x/y"])
def test_a_url_that_is_no_web_address_says_how_to_use_a_local_copy(tmp_path, url):
    with pytest.raises(CourseError) as caught:
        download.download_corpus(url, tmp_path)
    message = str(caught.value)
    assert "is not a web address" in message and str(tmp_path / "pg2000.txt") in message
    assert "adapter" not in message and not list(tmp_path.iterdir())  # nothing written
