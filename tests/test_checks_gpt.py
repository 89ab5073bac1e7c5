"""The lesson 05 checks of the whole model (GPT.forward with the loss; a cropping sampling loop)
pass correct code and name classic mistakes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub
from torch.nn import functional as F

from shared.checks import check_gpt_forward, check_sample
from shared.generate import generate_ids
from shared.model import GPT


# ----------------------------------------------------------------------------- GPT.forward
def _gpt(body):
    """A GPT subclass whose forward is ``body(self, idx, targets)``."""
    return type("MyGPT", (GPT,), {"forward": body})


def _features(self, idx, pos=True, ln=True, blocks="all", drop="input"):
    T = idx.size(1)
    x = self.token_embedding(idx)
    if pos == "ids":
        x = x + self.position_embedding(idx)
    elif pos == "from 1":
        x = x + self.position_embedding(torch.arange(1, T + 1))
    elif pos == "times":
        x = x * self.position_embedding(torch.arange(T))
    elif pos == "block_size":
        x = x + self.position_embedding(torch.arange(self.config.block_size))
    elif pos:
        x = x + self.position_embedding(torch.arange(T, device=idx.device))
    x = self.drop(x) if drop == "input" else x
    h = x
    order = list(self.blocks)[::-1] if blocks == "reversed" else self.blocks
    for block in order:
        h = block(x if blocks == "each" else h)
    if blocks == "last":
        h = self.blocks[-1](x)
    if blocks == "first":
        h = self.blocks[0](x)
    if blocks == "none":
        h = x
    h = self.drop(h) if drop == "output" else h
    if drop == "extra":
        h = torch.nn.functional.dropout(h, 0.1, training=self.training)
    return self.lm_head(self.ln_f(h) if ln else h)


def ours(self, idx, targets=None):
    logits = _features(self, idx)
    if targets is None:
        return logits, None
    return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def other_forward(self, idx, targets=None):  # correct, written differently
    x = self.embed(idx)
    for block in self.blocks:
        x = block(x)
    logits = self.lm_head(self.ln_f(x))
    loss = None
    if targets is not None:
        loss = F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), targets.flatten())
    return logits, loss


def _with_loss(features=None, loss=None):
    def forward(self, idx, targets=None):
        logits = (features or _features)(self, idx)
        if targets is None:
            return logits, None
        return logits, (loss or (lambda lg, t, i: F.cross_entropy(lg.flatten(0, 1), t.flatten())))(
            logits, targets, idx
        )

    return forward


def always_loss(self, idx, targets=None):
    logits = _features(self, idx)
    return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def flat_logits(self, idx, targets=None):
    logits = _features(self, idx)
    if targets is None:
        return logits, None
    logits = logits.view(-1, logits.size(-1))
    return logits, F.cross_entropy(logits, targets.view(-1))


def test_gpt_forward_passes_correct_code(capsys):
    for body in (ours, other_forward):
        assert_passes(check_gpt_forward, _gpt(body), capsys)


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (_gpt(lambda self, idx, targets=None: stub()), "not implemented yet"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, pos=False))), "no position embedding"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, ln=False))), "final LayerNorm is skipped"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, blocks="none"))), "blocks are skipped"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, blocks="each"))), "previous block's output"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, blocks="last"))), "only the last block"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, blocks="first"))), "only the first block"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, blocks="reversed"))), "reverse order"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, pos="ids"))), "from the character ids"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, pos="from 1"))), "positions start at 1"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, pos="times"))), "are multiplied"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, pos="block_size"))), "T = idx.size(1)"),
        (_gpt(_with_loss(lambda s, i: _features(s, i).softmax(0))), "do not apply softmax"),
        (_gpt(_with_loss(lambda s, i: _features(s, i).log_softmax(-1))), "nor log_softmax"),
        (_gpt(_with_loss(loss=lambda lg, t, i: F.cross_entropy(lg, t))), "reads the classes"),
        (
            _gpt(_with_loss(loss=lambda lg, t, i: F.cross_entropy(lg.flatten(0, 1), t))),
            "flattened alike",
        ),
        (
            _gpt(_with_loss(loss=lambda lg, t, i: F.nll_loss(lg.flatten(0, 1), t.flatten()))),
            "expects log-probabilities",
        ),
        (
            _gpt(
                _with_loss(loss=lambda lg, t, i: F.cross_entropy(lg.flatten(0, 1), t.T.flatten()))
            ),
            "flattened in different orders",
        ),
        (_gpt(_with_loss(lambda s, i: _features(s, i).softmax(-1))), "do not apply softmax"),
        (_gpt(always_loss), "return (logits, None)"),
        (_gpt(_with_loss(lambda s, i: _features(s, i).squeeze())), "idx of shape (1, 1)"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, drop=None))), "self.drop is never applied"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, drop="output"))), "after the blocks"),
        (_gpt(_with_loss(lambda s, i: _features(s, i, drop="extra"))), "no other randomness"),
        (_gpt(flat_logits), "keep logits (B, T, vocab_size)"),
        (
            _gpt(
                _with_loss(
                    loss=lambda lg, t, i: F.cross_entropy(
                        lg.flatten(0, 1), t.flatten(), reduction="sum"
                    )
                )
            ),
            "summed, not averaged",
        ),
        (
            _gpt(
                _with_loss(
                    loss=lambda lg, t, i: F.cross_entropy(
                        lg[:, :-1].flatten(0, 1), t[:, 1:].flatten()
                    )
                )
            ),
            "shifted a second time",
        ),
        (
            _gpt(_with_loss(loss=lambda lg, t, i: F.cross_entropy(lg.flatten(0, 1), i.flatten()))),
            "compares with idx",
        ),
        (
            _gpt(
                _with_loss(
                    loss=lambda lg, t, i: F.cross_entropy(lg.softmax(-1).flatten(0, 1), t.flatten())
                )
            ),
            "not probabilities",
        ),
    ],
)
def test_gpt_forward_names_the_mistake(buggy, hint):
    assert_fails(check_gpt_forward, buggy, hint)


# ----------------------------------------------------------------------------- sample
def make_sample(crop="last", pick="sample", use_generator=True, reseed=False, steps=0, cat=1):
    def sample(model, idx, max_new_tokens, generator=None):
        bs = model.config.block_size
        prompt = idx
        for _ in range(max_new_tokens + steps):
            if reseed:
                generator.manual_seed(0)
            if crop == "last":
                context = idx[:, -bs:]
            elif crop == "front":
                context = idx[:, :bs]
            elif crop == "one_short":
                context = idx[:, -(bs - 1) :]
            elif crop == "one_long":
                context = idx[:, -(bs + 1) :]
            elif crop == "column":
                context = idx[:, -bs]
            elif crop == "prompt":
                context = prompt[:, -bs:]
            else:
                context = idx
            full, _ = model(context)
            logits = full[:, 0, :] if pick == "first" else full[:, -1, :]
            if pick == "argmax":
                next_id = logits.argmax(-1, keepdim=True)
            elif pick == "raw":
                next_id = torch.multinomial(logits, 1, generator=generator)
            elif pick == "time":
                probs = F.softmax(full, dim=1)[:, -1, :]
                next_id = torch.multinomial(probs, 1, generator=generator)
            else:
                probs = F.softmax(logits, dim=0 if pick == "batch" else -1)
                next_id = torch.multinomial(
                    probs, 1, generator=generator if use_generator else None
                )
            next_id = next_id.squeeze(-1) if cat == "squeezed" else next_id
            idx = torch.cat([idx, next_id], dim=0 if cat == 0 else 1)
        return idx

    return sample


def reference_sample(model, idx, max_new_tokens, generator=None):  # the course's one loop
    return generate_ids(model, idx, max_new_tokens, generator=generator, use_cache=False)


def numpy_sample(model, idx, max_new_tokens, generator=None):
    bs = model.config.block_size
    for _ in range(max_new_tokens):
        probs = F.softmax(model(idx[:, -bs:])[0][:, -1, :], dim=-1).double()
        probs = (probs / probs.sum(-1, keepdim=True)).numpy()
        ids = [[np.random.choice(probs.shape[-1], p=row)] for row in probs]
        idx = torch.cat([idx, torch.tensor(ids)], dim=1)
    return idx


def random_sample(model, idx, max_new_tokens, generator=None):
    bs = model.config.block_size
    for _ in range(max_new_tokens):
        probs = F.softmax(model(idx[:, -bs:])[0][:, -1, :], dim=-1)
        ids = [random.choices(range(probs.size(-1)), weights=row.tolist()) for row in probs]
        idx = torch.cat([idx, torch.tensor(ids)], dim=1)
    return idx


def only_new_ids(model, idx, max_new_tokens, generator=None):
    return make_sample()(model, idx, max_new_tokens, generator)[:, idx.size(1) :]


def test_sample_passes_correct_code(capsys):
    for fn in (make_sample(), reference_sample):
        assert_passes(check_sample, fn, capsys)


def test_sample_check_leaves_the_global_rng_and_prompt_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check_sample(make_sample())
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (make_sample(crop="none"), "crop the context to the last block_size"),
        (make_sample(crop="one_long"), "block_size + 1 is off by one"),
        (make_sample(crop="column"), "picks one column"),
        (make_sample(crop="prompt"), "drawn from the prompt's context"),
        (make_sample(pick="batch"), "over the batch dimension"),
        (make_sample(pick="time"), "over the positions (dim=1)"),
        (make_sample(pick="raw"), "not the raw logits"),
        (make_sample(steps=1), "returned 7 new ids"),
        (make_sample(steps=-1), "returned 5 new ids"),
        (make_sample(cat=0), "not as new rows"),
        (make_sample(cat="squeezed"), "keep the column"),
        (make_sample(crop="front"), "cropped from the front"),
        (make_sample(crop="one_short"), "off by one"),
        (make_sample(pick="first"), "first position's logits"),
        (make_sample(pick="argmax"), "argmax"),
        (make_sample(use_generator=False), "generator is ignored"),
        (make_sample(reseed=True), "reseeded at every step"),
        (numpy_sample, "numpy's random state"),
        (random_sample, "Python's `random`"),
        (only_new_ids, "shape (2, 2 + 6)"),
    ],
)
def test_sample_names_the_mistake(buggy, hint):
    assert_fails(check_sample, buggy, hint)
