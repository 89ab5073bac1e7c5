"""Checks for lesson 05's whole model: the GPT's forward pass with its loss, and the sampling
loop that crops the context to block_size."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import Exercise, close, fail, passed, require_callable, seeded

EXERCISES = [
    Exercise(
        name="gpt_forward",
        check="check_gpt_forward",
        target="MyGPT",
        description="GPT.forward(idx, targets=None) -> (logits, loss)",
    ),
    Exercise(
        name="sample",
        check="check_sample",
        target="sample",
        description="sample(model, idx, max_new_tokens, generator) with the context cropped",
    ),
]


# ----------------------------------------------------------------------------- GPT.forward
def _reference_gpt(dropout=0.0):
    from shared.model import GPT, GPTConfig

    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=dropout)
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(config).eval()
    with torch.no_grad():  # move every weight off its init, so a skipped part shows
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def _pieces(ref, idx):
    """What the classic mistakes would compute, from the reference's own modules."""
    T = idx.size(1)
    tok = ref.token_embedding(idx)
    x = tok + ref.position_embedding(torch.arange(T))

    def stack(h):
        for block in ref.blocks:
            h = block(h)
        return h

    head = ref.lm_head
    return {
        "no position embedding: add position_embedding(torch.arange(T)) to the token "
        "embeddings, so the model knows where each character sits": [head(ref.ln_f(stack(tok)))],
        "the final LayerNorm is skipped: logits = lm_head(ln_f(x))": [head(stack(x))],
        "the blocks are skipped: run x through every block in self.blocks": [head(ref.ln_f(x))],
        "every block gets the embeddings instead of the previous block's output: "
        "x = block(x) inside the loop": [head(ref.ln_f(ref.blocks[-1](x)))],
        "logits are the raw scores, not probabilities: do not apply softmax": [
            F.softmax(head(ref.ln_f(stack(x))), dim=-1)
        ],
    }


def check_gpt_forward(MyGPT) -> None:
    """Compare ``MyGPT(config)``'s forward with the reference GPT, given the same weights."""
    __tracebackhide__ = True
    name = "gpt_forward"
    require_callable(name, MyGPT, "your GPT class")
    ref = _reference_gpt()
    with torch.random.fork_rng():
        model = construct(name, MyGPT, ref.config)
    try:
        model.load_state_dict(ref.state_dict())
    except Exception:
        fail(name, "keep GPT's __init__ (subclass GPT and write only forward): the weights differ.")
    model.eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 13, (2, 6), generator=g)  # T=6 < block_size=8
    targets = torch.randint(0, 13, (2, 6), generator=g)
    with torch.no_grad(), torch.random.fork_rng():
        want, want_loss = ref(idx, targets)
        out = call(
            name, model, idx, what="model(idx)",
            hint=lambda e: "with targets=None there is no loss to compute: return (logits, None)."
            if isinstance(e, AttributeError) and "NoneType" in str(e) else None,
        )  # fmt: skip
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(name, "forward should return a pair (logits, loss), also when targets is None.")
        logits, loss = out
        if loss is not None:
            fail(name, "with targets=None, return (logits, None): there is nothing to compare to.")
        if not isinstance(logits, torch.Tensor) or logits.shape != want.shape:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            fail(name, f"logits should be (B, T, vocab_size) = {tuple(want.shape)}, got {got}.")
        if not close(logits, want, atol=1e-4):
            for mistake, candidates in _pieces(ref, idx).items():
                if any(close(logits, c, atol=1e-4) for c in candidates):
                    fail(name, f"looks like {mistake}.")
            fail(name, "the logits differ from embeddings -> blocks -> ln_f -> lm_head.")
        out = call(name, model, idx, targets, what="model(idx, targets)")
        logits2, loss = out if isinstance(out, tuple) and len(out) == 2 else (None, None)
        if isinstance(logits2, torch.Tensor) and logits2.dim() == 2:
            fail(name, "keep logits (B, T, vocab_size); flatten only for the cross-entropy.")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            fail(name, "with targets, return (logits, loss) where loss is one number (a tensor).")
        flat = want.view(-1, 13)
        mistakes = {
            "the loss is summed, not averaged: F.cross_entropy's default reduction is the mean": [
                F.cross_entropy(flat, targets.view(-1), reduction="sum")
            ],
            "the targets are shifted a second time: targets already are idx shifted by one, "
            "compare logits[:, t] with targets[:, t]": [
                F.cross_entropy(want[:, :-1].reshape(-1, 13), targets[:, 1:].reshape(-1))
            ],
            "the loss compares with idx, not with targets": [F.cross_entropy(flat, idx.view(-1))],
            "cross-entropy takes raw logits (it applies log-softmax itself), not probabilities": [
                F.cross_entropy(F.softmax(flat, dim=-1), targets.view(-1))
            ],
        }
        if not close(loss.reshape(()), want_loss, atol=1e-4):
            for mistake, candidates in mistakes.items():
                if any(close(loss.reshape(()), c, atol=1e-4) for c in candidates):
                    fail(name, f"looks like {mistake}.")
            fail(
                name,
                f"loss {loss.item():.4f} differs from the mean cross-entropy {want_loss.item():.4f}.",
            )
    _check_dropout(name, MyGPT)
    passed(name, "same logits and loss as the reference GPT with the same weights")


def _train_mode_logits(ref, idx, where):
    """The reference's training-mode logits with self.drop applied at ``where`` (or nowhere);
    the caller seeds the global RNG, so the blocks' dropout draws line up."""
    T = idx.size(1)
    x = ref.token_embedding(idx) + ref.position_embedding(torch.arange(T))
    x = ref.drop(x) if where == "input" else x
    for block in ref.blocks:
        x = block(x)
    x = ref.drop(x) if where == "output" else x
    return ref.lm_head(ref.ln_f(x))


def _check_dropout(name, MyGPT):
    """With dropout 0.3, in training mode: self.drop once, on the embeddings, and nothing else."""
    __tracebackhide__ = True
    ref = _reference_gpt(dropout=0.3).train()
    with torch.random.fork_rng():
        model = construct(name, MyGPT, ref.config)
    model.load_state_dict(ref.state_dict())
    model.train()
    idx = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(7)
        out = call(name, model, idx, what="model(idx) in training mode (dropout=0.3)")
        torch.manual_seed(7)
        want = _train_mode_logits(ref, idx, "input")
        logits = out[0] if isinstance(out, tuple) else out
        if close(logits, want, atol=1e-4):
            return
        for where, mistake in (
            (None, "self.drop is never applied: the embeddings' dropout is part of the model "
             "(it does nothing in eval mode, which is why the eval-mode logits matched)"),
            ("output", "self.drop is applied after the blocks: it belongs on the sum of the "
             "two embeddings, before the first block"),
        ):  # fmt: skip
            torch.manual_seed(7)
            if close(logits, _train_mode_logits(ref, idx, where), atol=1e-4):
                fail(name, f"looks like {mistake}.")
    fail(name, "in training mode (dropout=0.3) the logits differ from the reference's with the "
         "same random draws: apply self.drop once, to the embeddings, then the blocks (their "
         "own dropout), and add no other randomness.")  # fmt: skip


# ----------------------------------------------------------------------------- sample
_BLOCK, _VOCAB = 4, 7


class _Recorder(nn.Module):
    """A stand-in language model with block_size 4 that remembers every context it is given.

    The logits at position t depend on every id up to t and on t itself, so cropping the wrong
    end, or reading the wrong position, changes what comes out.
    """

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(block_size=_BLOCK)
        g = torch.Generator().manual_seed(5)
        self.tok = torch.randn(_VOCAB, _VOCAB, generator=g) * 2
        self.pos = torch.randn(_BLOCK, _VOCAB, generator=g) * 2
        self.contexts: list[torch.Tensor] = []

    def forward(self, idx, targets=None):
        B, T = idx.shape
        if T > _BLOCK:
            raise ValueError(f"sequence of length {T} is longer than block_size={_BLOCK}")
        self.contexts.append(idx.detach().clone())
        running = self.tok[idx].cumsum(1) / torch.arange(1, T + 1).view(1, T, 1)  # (B, T, V)
        return running + self.pos[:T], None


def _reference_sample(idx, n, generator, pick="sample", crop="last", reseed=None):
    model = _Recorder()
    for _ in range(n):
        if reseed is not None:
            generator = torch.Generator().manual_seed(reseed)
        context = idx[:, -_BLOCK:] if crop == "last" else idx[:, :_BLOCK]
        logits = model(context)[0]
        logits = logits[:, -1, :] if pick != "first" else logits[:, 0, :]
        if pick == "argmax":
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


def _no_crop_hint(exc: Exception) -> str | None:
    if "longer than block_size" in str(exc):
        return (
            f"the model crashed: it was given more than block_size={_BLOCK} ids ({exc}). Crop "
            "the context to the last block_size ids before each forward pass."
        )
    return None


def check_sample(sample) -> None:
    """Run ``sample`` on a block_size-4 stand-in model; compare with the reference loop."""
    __tracebackhide__ = True
    name = "sample"
    require_callable(name, sample, "the sample function")
    prompt = torch.tensor([[1, 2], [3, 4]])
    n = 6
    with torch.random.fork_rng():
        torch.manual_seed(100)
        model = _Recorder()
        out = call(
            name, sample, model, prompt.clone(), n, generator=torch.Generator().manual_seed(0),
            what="sample(model, idx, 6, generator=g)", hint=_no_crop_hint,
        )  # fmt: skip
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 2 + n):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(name, f"return idx with the new ids appended: shape (2, 2 + {n}), got {got}.")
        if not torch.equal(out[:, :2], prompt):
            fail(name, "the result should start with the prompt idx, then the new ids.")
        lengths = [c.size(1) for c in model.contexts]
        if max(lengths, default=0) == _BLOCK - 1:
            fail(
                name,
                f"off by one: the model saw at most {_BLOCK - 1} ids; crop to the last block_size "
                f"ids, idx[:, -block_size:] (it saw contexts of length {lengths}).",
            )
        if any(torch.equal(c, out[:, :_BLOCK]) for c in model.contexts[_BLOCK - 1 :]):
            fail(
                name,
                "the context is cropped from the front: once the text is longer than block_size, "
                "keep its *last* block_size ids, idx[:, -block_size:].",
            )
        want = _reference_sample(prompt, n, torch.Generator().manual_seed(0))
        if torch.equal(out, want):
            torch.manual_seed(200)  # a different global state: the result must not change
            again = sample(
                _Recorder(), prompt.clone(), n, generator=torch.Generator().manual_seed(0)
            )
            if not torch.equal(again, out):
                fail(
                    name, "the same generator gave different text: pass generator= to multinomial."
                )
            passed(name, f"crops to the last block_size={_BLOCK} ids, samples the last position")
            return
        for pick, mistake in (
            ("argmax", "argmax always picks the most likely id: sample with torch.multinomial"),
            (
                "first",
                "the next id is drawn from the first position's logits: use logits[:, -1, :]",
            ),
        ):
            if torch.equal(
                out, _reference_sample(prompt, n, torch.Generator().manual_seed(0), pick)
            ):
                fail(name, f"looks like {mistake}.")
        if torch.equal(out, _reference_sample(prompt, n, None, reseed=0)):
            fail(name, "looks like the generator is reseeded at every step: each draw then "
                 "reuses the same random number, so the text repeats its choices. Seed once, "
                 "outside (the caller does), and pass the same generator to every draw.")  # fmt: skip
        draws = []
        for other_seed in (200, 201):  # same torch state, other states for numpy and random
            with seeded(other_seed):
                torch.manual_seed(200)
                draws.append(call(name, sample, _Recorder(), prompt.clone(), n,
                                  generator=torch.Generator().manual_seed(0),
                                  what="sample again"))  # fmt: skip
        if not torch.equal(draws[0], draws[1]):
            fail(name, "the ids change with Python's `random` or numpy's random state: draw with "
                 "torch.multinomial and the given generator, the RNG the spec names.")  # fmt: skip
        again = draws[0]
        if not torch.equal(again, out):
            fail(
                name,
                "the same generator gave different text: the generator is ignored. Pass "
                "generator=generator to torch.multinomial.",
            )
    fail(
        name,
        "the ids differ from sampling softmax(logits[:, -1, :]) of the last block_size ids, with "
        "torch.multinomial(probs, 1, generator=generator).",
    )
