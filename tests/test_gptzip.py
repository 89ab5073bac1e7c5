"""Issue 32: the arithmetic coder and the GPT that drives it (``shared.arithmetic_coding``,
``shared.window_cache``, ``shared.gptzip``): exact round trips, sizes at the entropy, clear
refusals. The command line is in tests/test_gptzip_cli.py."""

from __future__ import annotations

import math
import random

import pytest
import torch
from _tiny import TEXT

from shared.arithmetic_coding import (
    HALF,
    Decoder,
    Encoder,
    encode_uniform,
    narrow,
)
from shared.bpe import BPETokenizer
from shared.compress import loss_on_text
from shared.data import CharTokenizer
from shared.engine.errors import CourseError
from shared.gptzip import Plan, compress_text, decompress_bytes, estimate_bytes, read_header
from shared.model import GPT, GPTConfig
from shared.modern import ModernConfig, ModernGPT
from shared.window_cache import WindowCache

TOKENIZER = CharTokenizer(TEXT)


def tiny_model(seed=0, vocab=TOKENIZER.vocab_size, kind=ModernGPT, config=ModernConfig):
    torch.manual_seed(seed)
    model = kind(config(block_size=16, n_layer=1, n_head=2, n_embd=16, vocab_size=vocab))
    with torch.no_grad():  # the zero-initialised projections would predict a uniform guess
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- the coder


def test_narrow_tiles_the_interval_with_one_slice_per_symbol():
    low, high, cum = 1000, HALF + 12345, [0, 1, 5, 5 + 300, 2**20]
    slices = [narrow(low, high, cum[s], cum[s + 1], cum[-1]) for s in range(4)]
    assert slices[0][0] == low and slices[-1][1] == high
    for (_, end), (start, _) in zip(slices, slices[1:], strict=False):
        assert start == end + 1  # no gap, no overlap
    widths = [b - a + 1 for a, b in slices]
    assert min(widths) >= 1 and widths[3] > widths[2] > widths[1] > widths[0]


def test_a_known_distribution_codes_within_a_few_bytes_of_its_entropy():
    rng = random.Random(1)
    freqs = [rng.randint(1, 1000) for _ in range(40)] + [1]  # one symbol at 1/20000
    cum = [0]
    for f in freqs:
        cum.append(cum[-1] + f)
    message = rng.choices(range(41), weights=freqs, k=5000) + [40, 40]
    encoder = Encoder()
    for s in message:
        encoder.encode(cum[s], cum[s + 1], cum[-1])
    data = encoder.finish()
    entropy_bytes = sum(-math.log2(freqs[s] / cum[-1]) for s in message) / 8
    assert entropy_bytes <= len(data) <= entropy_bytes + 3
    decoder = Decoder(data)
    assert [decoder.decode(cum) for _ in message] == message


def test_uniform_symbols_round_trip_among_frequency_coded_ones():
    encoder, values = Encoder(), [0, 0x10FFFF, 0x1F600, 7]
    for v in values:
        encode_uniform(encoder, v, 0x110000)
        encoder.encode(1, 3, 4)
    decoder = Decoder(encoder.finish())
    out = []
    for _ in values:
        out.append(decoder.decode_uniform(0x110000))
        assert decoder.decode([0, 1, 3, 4]) == 1
    assert out == values


def test_the_encoder_refuses_a_zero_frequency():
    with pytest.raises(ValueError):
        Encoder().encode(3, 3, 10)


# ----------------------------------------------------------------------------- the model side


@pytest.mark.parametrize("kind,config", [(ModernGPT, ModernConfig), (GPT, GPTConfig)])
def test_the_window_cache_gives_the_logits_of_the_whole_window(kind, config):
    model = tiny_model(kind=kind, config=config)
    idx = torch.randint(0, TOKENIZER.vocab_size, (3, 16))
    full, _ = model(idx)
    cache = WindowCache(model, batch=3, window=16)
    steps = torch.stack([cache.step(idx[:, t : t + 1]) for t in range(16)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="start a new one"):
        cache.step(idx[:, :1])


def test_the_plan_codes_every_position_once():
    plan = Plan(n=100, window=16, batch=3)  # 99 predictions: 7 windows, 3 lanes of 3, 3, 1
    assert (plan.n_windows, plan.lanes, plan.per_lane) == (7, 3, 3)
    positions = [p for j in range(3) for t in range(16) for p in plan.inputs(j, t) if p >= 0]
    assert sorted(positions) == list(range(99))  # every position is read once as an input
    assert plan.seeds() == [0, 48, 96]  # coded first; their predictions are then skipped


SAMPLES = {
    "empty": "",
    "one character": "E",
    "the book": TEXT[:700],
    "unseen characters, emoji, CRLF": "¿Qué? 😀 Ωμέγα\r\nlínea\r\n\tfin\x00" + TEXT[:90],
}


@pytest.mark.parametrize("text", SAMPLES.values(), ids=SAMPLES.keys())
def test_any_text_comes_back_exactly(text):
    model = tiny_model()
    data = compress_text(model, TOKENIZER, text, batch=4)
    assert decompress_bytes(model, TOKENIZER, data) == text


def test_a_byte_level_bpe_model_needs_no_escape():
    tokenizer = BPETokenizer.train(TEXT, 270)
    model, text = tiny_model(vocab=tokenizer.vocab_size), "Ñandú 😀\r\n" + TEXT[:300]
    data = compress_text(model, tokenizer, text, batch=3)
    assert decompress_bytes(model, tokenizer, data) == text


def test_the_file_is_as_big_as_the_cross_entropy_says():
    model, text = tiny_model(), TEXT[:3000]
    data = compress_text(model, TOKENIZER, text, batch=4)
    header, code = read_header(data)
    ids = torch.tensor(TOKENIZER.encode(text))
    estimate = estimate_bytes(loss_on_text(model, ids), len(ids))
    seeds = 4 * math.log2(TOKENIZER.vocab_size + 1) / 8  # each lane's first token, uniform
    assert abs(len(code) - estimate) <= 0.002 * estimate + seeds + 2
    assert header["tokens"] == len(ids) and header["crc32"] and header["threads"] == 1


def test_adapting_round_trips_learns_and_leaves_the_model_alone():
    model, text = tiny_model(), TEXT[:800]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = compress_text(model, TOKENIZER, text, batch=2)
    adapted = compress_text(model, TOKENIZER, text, batch=2, adapt_lr=3e-3)
    assert len(adapted) < len(plain)  # the text repeats: learning from it pays
    assert decompress_bytes(model, TOKENIZER, adapted) == text
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_another_model_is_refused_before_any_decoding():
    data = compress_text(tiny_model(seed=0), TOKENIZER, TEXT[:200])
    with pytest.raises(CourseError, match="compressed with another model"):
        decompress_bytes(tiny_model(seed=1), TOKENIZER, data)


def test_a_damaged_file_is_one_clear_error():
    model = tiny_model()
    data = bytearray(compress_text(model, TOKENIZER, TEXT[:400]))
    data[-20] ^= 0x10  # one flipped bit in the code
    with pytest.raises(CourseError, match="CRC32"):
        decompress_bytes(model, TOKENIZER, bytes(data))
    with pytest.raises(CourseError, match="not a .gptz file"):
        decompress_bytes(model, TOKENIZER, b"PK\x03\x04 a zip")
    with pytest.raises(CourseError, match="header is damaged"):
        decompress_bytes(model, TOKENIZER, bytes(data[:12]))


def test_decompress_uses_the_thread_count_of_the_file_and_restores_the_callers():
    model, text = tiny_model(), TEXT[:300]
    data = compress_text(model, TOKENIZER, text, batch=4)  # 1 thread (the fixture)
    torch.set_num_threads(2)
    assert decompress_bytes(model, TOKENIZER, data) == text
    assert torch.get_num_threads() == 2


def test_a_model_without_the_reference_attention_is_refused_clearly():
    class Bigram(torch.nn.Module):
        config = ModernConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, vocab_size=5)

    with pytest.raises(CourseError, match="to_reference"):
        compress_text(Bigram(), TOKENIZER, "hola")
