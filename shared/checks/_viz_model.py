"""The small random GPT and helpers the lesson 08 checks share (``viz``, ``_viz_steps``)."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from shared.checks._core import fail

_TEXT = "En un lugar de la Mancha,\n¿Quién «era» aquel señor? Sí, esto es, á é í ó ú ñ."


def small_gpt(block_size: int = 32, n_layer: int = 3, n_head: int = 4):
    """A small random GPT whose heads attend differently (a fresh GPT attends ~uniformly)."""
    from shared.data import CharTokenizer
    from shared.model import GPT, GPTConfig

    tokenizer = CharTokenizer(_TEXT)
    config = GPTConfig(tokenizer.vocab_size, block_size, n_layer, n_head, n_embd=4 * n_head)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.6)
    return model.eval(), tokenizer


_TRAINED: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}  # settings -> trained weights


def trained_small_gpt(block_size: int = 8, n_layer: int = 2, n_head: int = 3, steps: int = 40):
    """``small_gpt`` trained briefly on its own text: peaked, context-dependent predictions, like
    a real trained model's, so sampling mistakes (greedy, a reseeded generator, the wrong
    position) change the text. Deterministic: seeded, one thread (the caller's). Trained once
    per settings; every call gets a fresh model with those weights."""
    settings = (block_size, n_layer, n_head, steps)
    if settings not in _TRAINED:
        model, _ = _train_small_gpt(*settings)
        _TRAINED[settings] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model, tokenizer = small_gpt(block_size, n_layer, n_head)
    model.load_state_dict(_TRAINED[settings])
    return model.eval(), tokenizer


def _train_small_gpt(block_size: int, n_layer: int, n_head: int, steps: int):
    from torch.nn import functional as F

    model, tokenizer = small_gpt(block_size, n_layer, n_head)
    ids = torch.tensor(tokenizer.encode(_TEXT))
    starts = torch.arange(len(ids) - block_size)
    x = torch.stack([ids[i : i + block_size] for i in starts])  # every window of the text
    y = torch.stack([ids[i + 1 : i + block_size + 1] for i in starts])
    with torch.no_grad():  # start from a small init, as training does
        for p in model.parameters():
            p.mul_(0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.enable_grad():
        for _ in range(steps):
            logits = model(x)[0]
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), tokenizer


@contextmanager
def one_thread():
    """Tiny models run fastest on one thread (and don't fight other work for the cores);
    the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def all_weights(model, tokenizer, text: str) -> torch.Tensor:
    idx = torch.tensor([tokenizer.encode(text)])
    return model.attention_weights(idx)[:, 0]  # (n_layer, n_head, T, T)


def as_tensor(name: str, value, what: str) -> torch.Tensor:
    __tracebackhide__ = True
    try:
        return torch.as_tensor(value).detach().float().cpu()
    except Exception:
        fail(name, f"{what} should be a tensor, got {type(value).__name__}.")
