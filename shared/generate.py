"""Lesson 07: sampling from a trained GPT: temperature, top-k, top-p, a seed, streaming, a KV cache.

    python -m shared generate --prompt "En un lugar de la Mancha" --temperature 0.8 --seed 1

Each step turns the logits of the last position into a probability distribution, reshapes it
(temperature, top-k, top-p) and draws one character. Without a cache every step re-runs the
whole context (up to block_size characters); with the KV cache each step runs only the new
character and reuses the keys/values computed before (same logits, far fewer FLOPs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from shared.bpe import token_stream
from shared.engine.errors import CourseError
from shared.engine.threads import tuned_threads
from shared.kv_cache import cache_length, forward_with_cache, supports_cache

DEFAULT_START = "\n"  # an empty prompt starts the text as if at a new paragraph


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by T: T < 1 sharpens the distribution, T > 1 flattens it."""
    if not temperature > 0:
        raise CourseError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def sample_with_temperature(logits, temperature, generator=None) -> torch.Tensor:
    """logits (B, V) -> ids (B, 1) drawn from softmax(logits / temperature)."""
    probs = F.softmax(apply_temperature(logits, temperature), dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (k is clamped to the vocab size); others -> -inf."""
    k = min(int(k), logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: keep the fewest most likely tokens whose probabilities sum to >= p."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # drop a token when the ones before it already reach p (the top token always stays)
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None) -> torch.Tensor:
    """logits (B, V) of the last position -> next token ids (B, 1)."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt -> ids; characters the model never saw -> a CourseError naming them (a byte-level
    BPE tokenizer, ``shared.bpe``, has no unknown characters)."""
    if getattr(tokenizer, "byte_level", False):
        return tokenizer.encode(prompt or DEFAULT_START)
    unknown = sorted(set(prompt) - set(tokenizer.chars))
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown)
        raise CourseError(
            f"the prompt contains characters the model never saw in training: {shown}; "
            "remove or replace them"
        )
    return tokenizer.encode(prompt or (DEFAULT_START if DEFAULT_START in tokenizer.chars else ""))


def generate_ids(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_token: Callable[[int], None] | None = None,
    num_threads: int | None = None,
    done: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """idx (B, T) -> (B, T + max_new_tokens): the one sampling loop (CLI, lessons, GIF).
    ``done()``, if given, is asked after each token: True stops early (fewer new tokens).

    ``model(idx)`` must return ``(logits, loss)``; it sees at most its last block_size ids. The
    KV cache is used when asked for and the model supports it (``shared.kv_cache``). The first
    few characters are timed at each CPU thread count and the fastest is kept (``shared.engine.threads``;
    ``num_threads`` forces a count)."""
    # inference_mode: like no_grad, minus autograd's bookkeeping (~10% faster per cached step)
    with torch.inference_mode(), tuned_threads(num_threads) as tuner:
        idx = _sample_loop(
            model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, on_token,
            tuner, done,
        )  # fmt: skip
    return idx.clone()  # a normal tensor again, usable anywhere (even as training input)


def _sample_loop(
    model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache, on_token, tuner,
    done=None,
) -> torch.Tensor:  # fmt: skip
    block_size = context_size(model)
    use_cache = use_cache and supports_cache(model)
    cache = None
    logits = None
    for _ in range(max_new_tokens):
        with tuner.step():  # timed: the thread count that writes fastest is kept
            if not use_cache:
                context = idx if block_size is None else idx[:, -block_size:]
                logits, _ = model(context)  # re-run the whole context every step
            elif cache is None or cache_length(cache) >= block_size:
                # (Re)fill the cache. When it is full we cannot append (positions stop at
                # block_size-1), so we restart from the last half block: one long step now,
                # then block_size/2 cheap steps again. From here on the text differs from the
                # plain loop, which slides its window by one every step.
                window = block_size if cache is None else max(1, block_size // 2)
                logits, cache = forward_with_cache(model, idx[:, -window:])
            else:
                logits, cache = forward_with_cache(model, idx[:, -1:], cache)  # only the new id
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
        if on_token is not None:
            on_token(int(next_id[0, 0]))
        if done is not None and done():
            break
    return idx


def context_size(model) -> int | None:
    """The longest context ``model`` accepts (its config's block_size); None for no limit."""
    return getattr(getattr(model, "config", None), "block_size", None)


def generate(
    model,
    tokenizer,
    prompt: str = "",
    max_new_chars: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    stream: Callable[[str], None] | None = None,
    num_threads: int | None = None,
) -> str:
    """Continue ``prompt`` by ``max_new_chars`` characters (also with a BPE tokenizer, whose
    tokens hold several); returns prompt + continuation. ``stream(text)`` gets the new text as
    it comes;
    ``num_threads``: CPU threads (default: the fastest, timed on the first characters)."""
    _check_sampling(temperature, top_k, top_p, max_new_chars)
    ids = encode_prompt(tokenizer, prompt)
    if not ids:
        raise CourseError("the model's vocabulary has no newline to start from; give a prompt")
    device = next(model.parameters()).device
    idx = torch.tensor([ids[-model.config.block_size :]], dtype=torch.long, device=device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    counter = CharCounter(max_new_chars, stream)  # BPE tokens hold several characters
    on_token = token_stream(tokenizer, counter.write)  # whole characters
    byte_level = getattr(tokenizer, "byte_level", False)
    # a character is at most 4 bytes, and a byte-level token at least 1: enough tokens for any text
    max_tokens = 4 * max_new_chars if byte_level else max_new_chars
    was_training = model.training
    model.eval()
    try:
        out = generate_ids(
            model, idx, max_tokens, temperature, top_k, top_p, generator, use_cache, on_token,
            num_threads, done=counter.full if byte_level else None,
        )  # fmt: skip
    finally:
        model.train(was_training)
    return prompt + tokenizer.decode(out[0, idx.size(1) :].tolist())[:max_new_chars]


class CharCounter:
    """Passes the first ``limit`` characters of the streamed text to ``stream`` (if any) and
    says when that many have arrived (``full``)."""

    def __init__(self, limit: int, stream: Callable[[str], None] | None = None):
        self.limit, self.count, self.stream = limit, 0, stream

    def write(self, text: str) -> None:
        text = text[: max(0, self.limit - self.count)]
        self.count += len(text)
        if text and self.stream is not None:
            self.stream(text)

    def full(self) -> bool:
        return self.count >= self.limit


def _check_sampling(temperature, top_k, top_p, max_new_chars) -> None:
    if not temperature > 0:
        raise CourseError(f"temperature must be > 0 (try 0.8), got {temperature}")
    if top_k is not None and top_k < 1:
        raise CourseError(f"top-k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise CourseError(f"top-p must be in (0, 1], got {top_p}")
    if max_new_chars < 0:
        raise CourseError(f"max-new-chars must be >= 0, got {max_new_chars}")
