"""Arithmetic coding (lesson 10): turn a model's probabilities into a file of bits.

A model that gives the next symbol probability p can code it in -log2(p) bits. The arithmetic
coder is how: the message is a number in [0, 1). Each symbol narrows the current interval to
its own slice, whose width is the symbol's probability; at the end, a few bits name a point
inside the final interval, which is as wide as the product of all the probabilities. Its
length in bits is -log2 of that product: the model's cross-entropy, plus ~2 bits.

Everything is integers, so the encoder and the decoder compute *exactly* the same intervals:

- probabilities are integer frequencies: symbol s owns ``[cum[s], cum[s+1])`` of ``total``
  (``total <= MAX_TOTAL``, every symbol at least 1, or it could never be coded);
- the interval is ``[low, high]`` of 32-bit integers (``high`` inclusive), and ``narrow`` cuts
  out a symbol's slice of it;
- when both ends agree on their top bit, that bit can never change again: it is written out and
  the interval is doubled (``renormalise``). When the interval straddles the middle but has
  shrunk into the middle half (low >= 1/4, high < 3/4), we cannot know the next bit yet: we
  remember it as *pending* (it will be the opposite of the next bit we output) and double the
  middle half. This keeps the interval wider than a quarter of the range, so every symbol's
  slice is at least 1 wide.

    enc = Encoder()
    for s in message:
        enc.encode(cum[s], cum[s + 1], total)
    data = enc.finish()                     # bytes
    dec = Decoder(data)
    s = dec.decode(cum, total)              # the same cum table, symbol after symbol

This is the classic coder of Witten, Neal and Cleary (1987), in plain Python ints.
"""

from __future__ import annotations

from bisect import bisect_right

PRECISION = 32
FULL = 1 << PRECISION  # the interval lives in [0, FULL)
HALF = FULL >> 1
QUARTER = FULL >> 2
MAX_TOTAL = 1 << 24  # frequencies must sum to at most this (< QUARTER: every slice >= 1 wide)


def narrow(low: int, high: int, cum_low: int, cum_high: int, total: int) -> tuple[int, int]:
    """The interval ``[low, high]`` -> the slice ``[cum_low, cum_high)`` / ``total`` of it.

    ``width = high - low + 1`` integers; the symbol gets ``width * cum_low // total`` up to
    (not including) ``width * cum_high // total``, counted from ``low``. The slices of all the
    symbols tile the interval exactly, and a slice is wider when its frequency is larger.
    """
    width = high - low + 1
    return low + width * cum_low // total, low + width * cum_high // total - 1


class Encoder:
    """Symbols in (as cumulative frequency ranges), bits out."""

    def __init__(self):
        self.low, self.high = 0, FULL - 1
        self.pending = 0  # bits we know are the opposite of the next one we output
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)
        self.pending = 0

    def encode(self, cum_low: int, cum_high: int, total: int) -> None:
        """Code the symbol that owns ``[cum_low, cum_high)`` out of ``total``."""
        if not 0 <= cum_low < cum_high <= total <= MAX_TOTAL:
            raise ValueError(f"bad frequencies [{cum_low}, {cum_high}) of {total}")
        self.low, self.high = narrow(self.low, self.high, cum_low, cum_high, total)
        while True:  # renormalise: output the bits that are settled, double the interval
            if self.high < HALF:  # both in the lower half: the next bit is 0
                self._emit(0)
            elif self.low >= HALF:  # both in the upper half: 1
                self._emit(1)
                self.low, self.high = self.low - HALF, self.high - HALF
            elif self.low >= QUARTER and self.high < HALF + QUARTER:  # the middle half: wait
                self.pending += 1
                self.low, self.high = self.low - QUARTER, self.high - QUARTER
            else:
                return
            self.low, self.high = 2 * self.low, 2 * self.high + 1

    def finish(self) -> bytes:
        """Two more bits pick a point inside the final interval; pad to whole bytes."""
        self.pending += 1
        self._emit(0 if self.low < QUARTER else 1)
        return pack_bits(self.bits)


class Decoder:
    """Bits in, symbols out: follows the encoder's intervals, reading the bits it wrote."""

    def __init__(self, data: bytes):
        self.data, self.position = data, 0  # position: the next bit to read
        self.low, self.high = 0, FULL - 1
        self.value = 0  # the PRECISION bits of the message under the window
        for _ in range(PRECISION):
            self.value = 2 * self.value + self._bit()

    def _bit(self) -> int:
        byte, shift = divmod(self.position, 8)
        self.position += 1
        if byte >= len(self.data):
            return 0  # past the end: the encoder's padding was zeros
        return (self.data[byte] >> (7 - shift)) & 1

    def target(self, total: int) -> int:
        """Where the message lies in the current interval, on the scale 0..total-1."""
        width = self.high - self.low + 1
        return ((self.value - self.low + 1) * total - 1) // width

    def decode(self, cum: list[int], total: int | None = None) -> int:
        """The symbol s whose ``[cum[s], cum[s+1])`` holds the message; then move past it.

        ``cum``: ``[0, f0, f0 + f1, ..., total]`` (``total`` defaults to ``cum[-1]``)."""
        total = cum[-1] if total is None else total
        symbol = bisect_right(cum, self.target(total)) - 1
        self.consume(cum[symbol], cum[symbol + 1], total)
        return symbol

    def decode_uniform(self, n: int) -> int:
        """A symbol in 0..n-1, all equally likely (each frequency 1)."""
        symbol = self.target(n)
        self.consume(symbol, symbol + 1, n)
        return symbol

    def consume(self, cum_low: int, cum_high: int, total: int) -> None:
        """The same narrowing and renormalisation as ``Encoder.encode``, reading bits in."""
        self.low, self.high = narrow(self.low, self.high, cum_low, cum_high, total)
        while True:
            if self.high < HALF:
                pass
            elif self.low >= HALF:
                self.low, self.high, self.value = (
                    self.low - HALF, self.high - HALF, self.value - HALF,
                )  # fmt: skip
            elif self.low >= QUARTER and self.high < HALF + QUARTER:
                self.low, self.high, self.value = (
                    self.low - QUARTER, self.high - QUARTER, self.value - QUARTER,
                )  # fmt: skip
            else:
                return
            self.low, self.high = 2 * self.low, 2 * self.high + 1
            self.value = 2 * self.value + self._bit()


def encode_uniform(encoder: Encoder, symbol: int, n: int) -> None:
    """Code ``symbol`` in 0..n-1 with every symbol equally likely: log2(n) bits."""
    encoder.encode(symbol, symbol + 1, n)


def pack_bits(bits: list[int]) -> bytes:
    """[1, 0, 1] -> b'\\xa0': 8 bits a byte, the first bit the highest, zeros at the end."""
    if not bits:
        return b""
    padded = "".join(map(str, bits)) + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")
