"""A GPT as a real compressor (lesson 10): the model's probabilities drive an arithmetic coder.

    data = compress_text(model, tokenizer, text)        # bytes: a small header + the code
    text = decompress_bytes(model, tokenizer, data)     # the same text, exactly
    header, code = read_header(data)                    # len(code): the coded text alone
                                                        # (the header is ~200 bytes)

How the text is walked (the encoder and the decoder do *exactly* the same, see below):

- the tokens are cut into consecutive windows of ``block_size``; each token is predicted from
  the start of its window, as ``shared.compress.loss_on_text`` measures it, so the file is as
  big as that cross-entropy says (plus ~2 bytes and the header);
- the windows are dealt out to ``lanes`` (up to ``batch``) lanes of consecutive windows; at
  each step the model reads one new token of every lane at once (one batch row per lane, with
  the KV cache of ``shared.window_cache``), and the coder codes the lanes' next tokens one after
  the other into one stream. A window begins with the last token of the lane's previous window;
  the first token of each lane is coded with all tokens equally likely;
- characters the vocabulary lacks are coded as an ESCAPE symbol (a tiny frequency, always
  there) followed by their code point, all code points equally likely (~21 bits);
- ``adapt_lr`` (dynamic evaluation): after every window of every lane, one Adam step on the
  cross-entropy of those windows, so the model keeps learning from the text it has coded. The
  decoder makes the same steps after decoding them.

One flipped bit in a probability would send the decoder off a different path, so the
probabilities must come from the same float computation on both sides: the same ops in the
same shapes, the same torch version and the same number of threads (recorded in the header and
set again by the decoder). The model runs the same way whether it codes or decodes: the encoder
never takes a shortcut such as one forward pass over a whole window.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zlib

import torch
from torch.nn import functional as F

from shared.arithmetic_coding import MAX_TOTAL, Decoder, Encoder, encode_uniform
from shared.engine.errors import CourseError
from shared.kv_cache import supports_cache
from shared.window_cache import WindowCache

MAGIC, VERSION = b"GPTZ", 1
CODE_POINTS = 0x110000  # Unicode: an escaped character is one of these
ESCAPE_FREQUENCY = 64  # out of MAX_TOTAL (2^24): costs the other symbols ~6e-6 bits each
DEFAULT_BATCH = 64


def fingerprint(model, tokenizer) -> str:
    """16 hex digits of the SHA-256 of the weights (names, shapes, bytes) and the tokenizer."""
    digest = hashlib.sha256(json.dumps(tokenizer.to_dict(), sort_keys=True).encode("utf-8"))
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cumulative_frequencies(logits: torch.Tensor, escape: bool) -> torch.Tensor:
    """logits (L, V) -> integer cumulative frequencies (L, V + 1 [+ 1 with the escape]).

    Each symbol gets ``floor(p * budget) + 1`` (never 0, or it could not be coded); the escape,
    if any, a fixed ``ESCAPE_FREQUENCY``. Row totals stay <= ``MAX_TOTAL``."""
    vocab = logits.size(-1)
    budget = MAX_TOTAL - vocab - ESCAPE_FREQUENCY
    probs = torch.softmax(logits.double(), dim=-1)
    freqs = (probs * budget).floor().long() + 1
    columns = [torch.zeros_like(freqs[:, :1]), freqs]
    if escape:
        columns.append(torch.full_like(freqs[:, :1], ESCAPE_FREQUENCY))
    return torch.cat(columns, dim=1).cumsum(dim=1)


class Plan:
    """Where each token sits: ``n`` tokens, windows of ``window``, ``lanes`` lanes of
    ``per_lane`` consecutive windows each."""

    def __init__(self, n: int, window: int, batch: int):
        self.n, self.window = n, window
        self.n_windows = -(-(n - 1) // window) if n > 1 else 0
        self.per_lane = -(-self.n_windows // batch) if self.n_windows else 0
        self.lanes = -(-self.n_windows // self.per_lane) if self.n_windows else min(n, 1)

    def seeds(self) -> list[int]:
        """The first position of every lane: coded without a model prediction."""
        return [lane * self.per_lane * self.window for lane in range(self.lanes)]

    def inputs(self, j: int, t: int) -> list[int]:
        """Position of step t of window j in every lane, or -1 where that lane has none."""
        out = []
        for lane in range(self.lanes):
            k = lane * self.per_lane + j
            p = k * self.window + t
            out.append(p if k < self.n_windows and p + 1 < self.n else -1)
        return out


class Symbols:
    """The tokens of a text, with an escape for characters a character vocabulary lacks."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.byte_level = getattr(tokenizer, "byte_level", False)
        self.vocab = tokenizer.vocab_size
        self.escape = None if self.byte_level else self.vocab  # the escape's symbol number
        self.ids: list[int] = []  # model inputs (an escaped character reads as id 0)
        self.escaped: dict[int, int] = {}  # position -> code point

    def load(self, text: str) -> Symbols:
        if self.byte_level:
            self.ids = self.tokenizer.encode(text)
            return self
        stoi = self.tokenizer.stoi
        self.ids = [stoi.get(ch, 0) for ch in text]
        self.escaped = {i: ord(ch) for i, ch in enumerate(text) if ch not in stoi}
        return self

    def text(self) -> str:
        if self.byte_level:
            data = b"".join(self.tokenizer.vocab[i] for i in self.ids)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise CourseError("the decoded bytes are not UTF-8: the file is damaged") from None
        itos = self.tokenizer.itos
        return "".join(
            chr(self.escaped[i]) if i in self.escaped else itos[s] for i, s in enumerate(self.ids)
        )

    def put(self, encoder: Encoder, position: int, cum: list[int]) -> None:
        """Code the symbol at ``position`` with the cumulative frequencies ``cum``."""
        if position in self.escaped:
            encoder.encode(cum[self.escape], cum[self.escape + 1], cum[-1])
            encode_uniform(encoder, self.escaped[position], CODE_POINTS)
        else:
            symbol = self.ids[position]
            encoder.encode(cum[symbol], cum[symbol + 1], cum[-1])

    def get(self, decoder: Decoder, position: int, cum: list[int]) -> None:
        """Decode the symbol at ``position`` (the next one in the stream)."""
        symbol = decoder.decode(cum)
        if symbol == self.escape:
            self.escaped[position] = decoder.decode_uniform(CODE_POINTS)
            symbol = 0
        self.ids[position] = symbol

    def uniform(self) -> list[int]:
        """Cumulative frequencies with every symbol (and the escape) equally likely."""
        return list(range(self.vocab + (self.escape is not None) + 1))


def run_walk(model, plan: Plan, symbols: Symbols, code, adapt_lr, progress) -> None:
    """``walk`` as both sides run it: in eval mode (no dropout), on a copy of the model when it
    adapts (the caller's model is never changed); ``progress(tokens_done, tokens_total)``."""
    model = copy.deepcopy(model) if adapt_lr else model
    was_training = model.training
    model.eval()
    try:
        walk(model, plan, symbols, code, adapt_lr, progress and (lambda d: progress(d, plan.n)))
    finally:
        model.train(was_training)


def walk(model, plan: Plan, symbols: Symbols, code, adapt_lr: float | None = None, progress=None):
    """The procedure both sides run: ``code(position, cum)`` encodes or decodes one symbol;
    when it returns, ``symbols.ids[position]`` holds it. ``progress(tokens_done)``."""
    optimizer = Adam(model.parameters(), lr=adapt_lr) if adapt_lr and plan.per_lane else None
    device = next(model.parameters()).device
    seeds = plan.seeds()
    for position in seeds:
        code(position, symbols.uniform())
    done, seeds = len(seeds), set(seeds)  # a seed is also the last target of the lane before
    for j in range(plan.per_lane):
        cache = WindowCache(model, plan.lanes, plan.window)
        for t in range(plan.window):
            positions = plan.inputs(j, t)
            if max(positions) < 0:
                break
            x = torch.tensor([[symbols.ids[p] if p >= 0 else 0] for p in positions])
            logits = cache.step(x.to(device))  # (lanes, vocab_size)
            rows = cumulative_frequencies(logits, symbols.escape is not None).tolist()
            for p, cum in zip(positions, rows, strict=True):
                if p >= 0 and p + 1 not in seeds:
                    code(p + 1, cum)
                    done += 1
            if progress:
                progress(done)
        if optimizer is not None:
            adapt_step(model, optimizer, plan, symbols, j)


def adapt_step(model, optimizer, plan: Plan, symbols: Symbols, j: int) -> None:
    """One optimiser step on the cross-entropy of window j of every lane (just coded)."""
    rows = [plan.inputs(j, t) for t in range(plan.window)]  # (T, lanes) positions
    x = torch.tensor([[symbols.ids[p] if p >= 0 else 0 for p in row] for row in rows]).T
    y = torch.tensor(
        [[symbols.ids[p + 1] if p >= 0 and p + 1 not in symbols.escaped else -1 for p in row]
         for row in rows]
    ).T  # fmt: skip
    if (y >= 0).any():
        device = next(model.parameters()).device
        logits, _ = model(x.to(device))
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1)
        loss.backward()
        optimizer.step()


class Adam:
    """Adam, written out: the same update as ``torch.optim.Adam`` (whose first use imports
    torch._dynamo, seconds on a CPU). Each step uses the gradients and then clears them."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.steps = lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]  # running mean of the gradient
        self.v = [torch.zeros_like(p) for p in self.params]  # ... and of its square

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            m_hat, v_hat = m / (1 - b1**self.steps), v / (1 - b2**self.steps)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
            p.grad = None


def compress_text(
    model, tokenizer, text: str, *, batch: int = DEFAULT_BATCH, adapt_lr: float | None = None,
    checkpoint: str | None = None, progress=None,
) -> bytes:  # fmt: skip
    """``text`` -> the bytes of a .gptz file (header + arithmetic code). The model is not
    changed (``adapt_lr`` trains a copy). ``progress(tokens_done, tokens_total)``."""
    check_model(model)
    raw = text.encode("utf-8")
    symbols = Symbols(tokenizer).load(text)
    plan = Plan(len(symbols.ids), model.config.block_size, batch)
    header = {
        "checkpoint": checkpoint, "fingerprint": fingerprint(model, tokenizer),
        "tokens": plan.n, "window": plan.window, "batch": batch, "adapt_lr": adapt_lr,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "bytes": len(raw), "crc32": zlib.crc32(raw),
    }  # fmt: skip
    encoder = Encoder()
    run_walk(model, plan, symbols, lambda p, cum: symbols.put(encoder, p, cum), adapt_lr, progress)
    meta = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return MAGIC + bytes([VERSION]) + len(meta).to_bytes(2, "big") + meta + encoder.finish()


def check_model(model) -> None:
    """The walk needs the attention layout of ``GPT`` or ``ModernGPT`` (their ``qkv``)."""
    if not supports_cache(model):
        raise CourseError(
            "compress needs a reference GPT or ModernGPT (shared.model, shared.modern); for "
            "your own per-head GPT use shared.engine.convert.to_reference(model) first"
        )


def read_header(data: bytes) -> tuple[dict, bytes]:
    """A .gptz file's header (a dict) and its code; anything else is one clear error."""
    if data[:4] != MAGIC:
        raise CourseError(
            "not a .gptz file (it does not start with GPTZ); give a file made by compress"
        )
    if data[4:5] != bytes([VERSION]):
        raise CourseError(
            f"a .gptz file of version {data[4:5].hex()}; this course reads version {VERSION}"
        )
    size = int.from_bytes(data[5:7], "big")
    try:
        header = json.loads(data[7 : 7 + size].decode("utf-8"))
        int(header["window"]), int(header["batch"]), header["fingerprint"]
        if not 0 <= int(header["tokens"]) <= int(header["bytes"]):  # a token is >= 1 byte
            raise ValueError("more tokens than bytes")
    except (ValueError, KeyError, TypeError):
        raise CourseError("the .gptz file's header is damaged; compress the text again") from None
    return header, data[7 + size :]


def decompress_bytes(model, tokenizer, data: bytes, progress=None) -> str:
    """The text ``compress_text`` was given; the model must be the one it used."""
    header, code = read_header(data)
    if fingerprint(model, tokenizer) != header["fingerprint"]:
        raise CourseError(
            f"this file was compressed with another model (checkpoint {header.get('checkpoint')}, "
            f"fingerprint {header['fingerprint']}): decompress it with that checkpoint"
        )
    if header["window"] != model.config.block_size:
        raise CourseError("the .gptz header's window is not the model's block_size: damaged file")
    symbols = Symbols(tokenizer)
    plan = Plan(header["tokens"], header["window"], header["batch"])
    symbols.ids = [0] * plan.n
    decoder = Decoder(code)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(header.get("threads") or threads))
    try:
        run_walk(
            model, plan, symbols, lambda p, cum: symbols.get(decoder, p, cum),
            header.get("adapt_lr"), progress,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return check_text(symbols, header)


def check_text(symbols: Symbols, header: dict) -> str:
    """The decoded text, once its length and CRC32 match the header's."""
    try:
        text = symbols.text()
        raw = text.encode("utf-8")
    except (ValueError, OverflowError, KeyError):  # a code point past Unicode, a surrogate
        raw, text = b"", None
    if text is None or len(raw) != header.get("bytes") or zlib.crc32(raw) != header.get("crc32"):
        why = "the file is damaged"
        if header.get("torch") != torch.__version__:
            why += f", or torch {torch.__version__} computes differently from its {header['torch']}"
        raise CourseError(f"the decompressed text fails its CRC32 check: {why}")
    return text


def estimate_bytes(loss_nats: float, n_tokens: int) -> float:
    """The file size the cross-entropy predicts: ``(n - 1)`` tokens at ``loss`` nats each."""
    return max(n_tokens - 1, 0) * loss_nats / math.log(2) / 8
