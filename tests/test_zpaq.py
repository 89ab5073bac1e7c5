"""shared.course.zpaq: lesson 10's zpaq row, measured like the other compressors, absent-safe."""

from __future__ import annotations

import random
import shutil

import pytest

from shared.course import zpaq


def test_without_zpaq_the_row_is_none_and_the_message_says_how_to_install(monkeypatch):
    monkeypatch.setattr(zpaq.shutil, "which", lambda name: None)
    assert zpaq.zpaq_bits_per_char("context", "text") is None
    with pytest.raises(FileNotFoundError, match="apt install zpaq"):
        zpaq.zpaq_size(b"text")


@pytest.mark.skipif(shutil.which("zpaq") is None, reason="zpaq is not installed")
def test_zpaq_learns_from_the_context():
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(3000))
    seen = zpaq.zpaq_bits_per_char(text, text)  # the text again: nearly free
    unseen = zpaq.zpaq_bits_per_char("x" * 3000, text)  # 27 letters at random: ~log2 27 bits
    assert seen < 1.0 < 4.0 < unseen < 6.0
