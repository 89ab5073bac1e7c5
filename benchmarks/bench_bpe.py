"""Byte-level BPE speed: ours (shared.bpe) against Hugging Face ``tokenizers``, on the book.

    python benchmarks/bench_bpe.py                  # vocab 1024 on the 1.9M-char train split
    python benchmarks/bench_bpe.py --vocab-size 2048 --naive-merges 0

Measures, one after the other in this process: learning the merges on the training split,
encoding the whole book (and checking it decodes back), and, for scale, a few merges of the
plain trainer that recounts every pair after each merge (lesson 09's exercise). Prints wall
seconds and CPU seconds (all threads of this process: Hugging Face trains and batch-encodes on
several threads) and the load average, because the build machine is shared.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager

from shared.bpe import BPETokenizer, merge_pair, pair_counts, split_chunks, train_merges
from shared.data import load_corpus


@contextmanager
def timed(label: str, results: dict):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    results[label] = (time.perf_counter() - wall, time.process_time() - cpu)
    print(f"{label:<44} {results[label][0]:7.2f} s wall {results[label][1]:7.2f} s CPU", flush=True)


def naive_merges(text: str, n: int) -> None:
    """The lesson's plain trainer: a full recount of every chunk after each merge."""
    chunks = [list(c.encode("utf-8")) for c in split_chunks(text)]
    for new_id in range(256, 256 + n):
        counts: dict = {}
        for ids in chunks:
            pair_counts(ids, counts)
        pair = min(counts, key=lambda p: (-counts[p], p))
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]


def hf_tokenizer(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    hf.train_from_iterator([text], trainer=trainer)
    return hf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--naive-merges", type=int, default=3, help="merges of the plain trainer")
    args = p.parse_args()
    corpus = load_corpus()
    text = corpus.text
    train_text = text[: len(corpus.train_data)]
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs (shared machine)")
    print(f"train split {len(train_text):,} characters, book {len(text):,} characters")
    r: dict = {}
    with timed(f"ours: train vocab {args.vocab_size}", r):
        tok = BPETokenizer(train_merges(train_text, args.vocab_size))
    with timed("ours: encode the book", r):
        ids = tok.encode(text)
    assert tok.decode(ids) == text
    with timed(f"HF tokenizers: train vocab {args.vocab_size}", r):
        hf = hf_tokenizer(train_text, args.vocab_size)
    with timed("HF tokenizers: encode the book (one string)", r):
        hf_one = hf.encode(text).ids
    with timed("HF tokenizers: encode the book (batch of lines)", r):
        hf_lines = [i for e in hf.encode_batch(text.splitlines(keepends=True)) for i in e.ids]
    if args.naive_merges:
        with timed(f"plain trainer: {args.naive_merges} merges, full recount", r):
            naive_merges(train_text, args.naive_merges)
        wall, cpu = r[f"plain trainer: {args.naive_merges} merges, full recount"]
        n = (args.vocab_size - 256) / args.naive_merges
        print(f"  -> {args.vocab_size - 256} merges would take ~{cpu * n / 60:.0f} min of CPU "
              f"(~{wall * n / 60:.0f} min of wall clock at this load)")  # fmt: skip
    print(f"tokens: ours {len(ids):,} ({len(text) / len(ids):.3f} chars/token), HF {len(hf_one):,} "
          f"(one string), {len(hf_lines):,} (lines)")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
