"""Check for lesson 05's sampling loop (``check_sample``, exported by ``shared.checks.model``):
a block_size-4 stand-in model records every context it is given, so cropping, the position
read, the softmax's dimension and the random draws can each be compared with the reference
loop, and a mistake is named only when the learner's ids equal what that mistake draws."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.checks._calls import call
from shared.checks._core import fail, passed, require_callable, seeded
from shared.checks._hints import crash_hint

_BLOCK, _VOCAB = 4, 7
_N = 6  # new ids: the context outgrows block_size on the third step


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


def _probs(logits, pick):
    """The next-id distribution (B, V) from the logits (B, T, V), as a mistake computes it."""
    if pick == "softmax over batch":
        return F.softmax(logits[:, -1, :], dim=0)
    if pick == "softmax over time":
        return F.softmax(logits, dim=1)[:, -1, :]
    return F.softmax(logits[:, -1, :] if pick != "first" else logits[:, 0, :], dim=-1)


def _reference_sample(idx, n, generator, pick="sample", crop="last", reseed=None):
    model, prompt = _Recorder(), idx
    for _ in range(n):
        if reseed is not None:
            generator = torch.Generator().manual_seed(reseed)
        source = prompt if crop == "prompt" else idx
        context = source[:, -_BLOCK:] if crop != "front" else source[:, :_BLOCK]
        logits = model(context)[0]
        if pick == "argmax":
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        else:
            next_id = torch.multinomial(_probs(logits, pick), 1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


_MISTAKES = [  # (how the mistake samples, what it is)
    ({"pick": "argmax"}, "argmax always picks the most likely id: sample with torch.multinomial"),
    ({"pick": "first"}, "the next id is drawn from the first position's logits: the last "
     "position (-1) is the one that has seen the whole context"),
    ({"pick": "softmax over batch"}, "the softmax runs over the batch dimension (dim=0), so "
     "each sequence's probabilities depend on the other sequences: normalise over the "
     "vocabulary, the last dimension"),
    ({"pick": "softmax over time"}, "the softmax runs over the positions (dim=1) before the "
     "last position is taken: normalise the last position's logits over the vocabulary"),
    ({"crop": "prompt"}, "every new id is drawn from the prompt's context: the ids drawn so "
     "far must join idx, and the next context is cut from the grown idx"),
    ({"generator": None, "reseed": 0}, "the generator is reseeded at every step: each draw "
     "then reuses the same random number, so the text repeats its choices. Seed once, outside "
     "(the caller does), and pass the same generator to every draw"),
]  # fmt: skip


def _hint(what):
    return crash_hint(what, [
        (None, "longer than block_size",
         f"The model takes at most block_size={_BLOCK} ids: crop the context to the last "
         "block_size ids before each forward pass (a crop of block_size + 1 is off by one)."),
        (None, "not enough values to unpack",
         "The model got a 1-D context: idx[:, -block_size] picks one column; a slice with its "
         "colon keeps the (B, T) shape."),
        (("IndexError",), "out of bounds for dimension 1",
         "idx[:, -block_size] picks one column (and fails while idx is shorter than "
         "block_size); a slice with its colon keeps the (B, T) shape and works at any length."),
        (None, "probability tensor contains",
         "torch.multinomial samples from probabilities (non-negative weights): take the softmax "
         "of the logits first, not the raw logits."),
        (None, "invalid multinomial distribution",
         "torch.multinomial samples from probabilities (non-negative weights): take the softmax "
         "of the logits first, not the raw logits."),
        (None, "same number of dimensions",
         "idx is (B, T) and the new ids must be (B, 1) to be appended along dim=1: keep the "
         "column torch.multinomial returns."),
        (None, "sizes of tensors must match except in dimension",
         "The new ids (B, 1) are appended to idx (B, T) along the time dimension, dim=1, not "
         "as new rows."),
    ])  # fmt: skip


def _draw(name, sample, what="sample(model, idx, 6, generator=g)"):
    __tracebackhide__ = True
    model = _Recorder()
    out = call(name, sample, model, torch.tensor([[1, 2], [3, 4]]), _N,
               generator=torch.Generator().manual_seed(0), what=what, hint=_hint(what))  # fmt: skip
    return model, out


def _check_shape(name, out, prompt):
    __tracebackhide__ = True
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.size(0) != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        fail(name, f"return idx with the new ids appended: shape (2, 2 + {_N}), got {got}.")
    if out.size(1) in (1 + _N, 3 + _N):
        fail(name, f"returned {out.size(1) - 2} new ids, expected max_new_tokens = {_N}: the "
             "loop adds one id per step, max_new_tokens times.")  # fmt: skip
    if out.size(1) != 2 + _N:
        fail(name, f"return idx with the new ids appended: shape (2, 2 + {_N}), got "
             f"{tuple(out.shape)}.")  # fmt: skip
    if not torch.equal(out[:, :2], prompt):
        fail(name, "the result should start with the prompt idx, then the new ids.")


def check_sample(sample) -> None:
    """Run ``sample`` on a block_size-4 stand-in model; compare with the reference loop."""
    __tracebackhide__ = True
    name = "sample"
    require_callable(name, sample, "the sample function")
    prompt = torch.tensor([[1, 2], [3, 4]])
    with torch.random.fork_rng():
        torch.manual_seed(100)
        model, out = _draw(name, sample)
        _check_shape(name, out, prompt)
        lengths = [c.size(1) for c in model.contexts]
        if max(lengths, default=0) == _BLOCK - 1:
            fail(name, f"off by one: the model saw at most {_BLOCK - 1} ids; it should see the "
                 f"last block_size ids (it saw contexts of length {lengths}).")  # fmt: skip
        if any(torch.equal(c, out[:, :_BLOCK]) for c in model.contexts[_BLOCK - 1 :]):
            fail(name, "the context is cropped from the front: once the text is longer than "
                 "block_size, keep its *last* block_size ids.")  # fmt: skip
        if torch.equal(out, _reference_sample(prompt, _N, torch.Generator().manual_seed(0))):
            torch.manual_seed(200)  # a different global state: the result must not change
            if not torch.equal(_draw(name, sample)[1], out):
                fail(name, "the same generator gave different text: pass generator= to "
                     "multinomial.")  # fmt: skip
            passed(name, f"crops to the last block_size={_BLOCK} ids, samples the last position")
            return
        for how, mistake in _MISTAKES:
            kwargs = {"generator": torch.Generator().manual_seed(0), **how}
            if torch.equal(out, _reference_sample(prompt, _N, **kwargs)):
                fail(name, f"looks like {mistake}.")
        draws = []
        for other_seed in (200, 201):  # same torch state, other states for numpy and random
            with seeded(other_seed):
                torch.manual_seed(200)
                draws.append(_draw(name, sample, "sample again")[1])
        if not torch.equal(draws[0], draws[1]):
            fail(name, "the ids change with Python's `random` or numpy's random state: draw with "
                 "torch.multinomial and the given generator, the RNG the spec names.")  # fmt: skip
        if not torch.equal(draws[0], out):
            fail(name, "the same generator gave different text: the generator is ignored. Pass "
                 "generator=generator to torch.multinomial.")  # fmt: skip
    fail(name, "the ids differ from sampling softmax(logits[:, -1, :]) of the last block_size "
         "ids, with torch.multinomial(probs, 1, generator=generator).")  # fmt: skip
