"""Checks for lesson 05's whole model: the GPT's forward pass with its loss, and the sampling
loop that crops the context to block_size."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import Exercise, close, fail, passed, require_callable
from shared.checks._hints import crash_hint
from shared.checks._sample import check_sample

__all__ = ["EXERCISES", "check_gpt_forward", "check_sample"]

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

    def stack_in(order):
        h = x
        for block in order:
            h = block(h)
        return h

    head = ref.lm_head
    pos_at = ref.position_embedding
    return {
        "no position embedding: add position_embedding(torch.arange(T)) to the token "
        "embeddings, so the model knows where each character sits": [head(ref.ln_f(stack(tok)))],
        "the final LayerNorm is skipped: logits = lm_head(ln_f(x))": [head(stack(x))],
        "the blocks are skipped: run x through every block in self.blocks": [head(ref.ln_f(x))],
        "only the last block's output reaches ln_f: either only the last block is applied, or "
        "each block reads the embeddings instead of the previous block's output (its result "
        "is then thrown away); the blocks form one stack": [head(ref.ln_f(ref.blocks[-1](x)))],
        "only the first block is applied: the blocks form one stack, each reading the previous "
        "one's output": [head(ref.ln_f(ref.blocks[0](x)))],
        "the blocks run in reverse order: self.blocks[0] comes first": [
            head(ref.ln_f(stack_in(list(ref.blocks)[::-1])))
        ],
        "the positions are looked up from the character ids: position_embedding gets each "
        "position's index 0..T-1, the same for every sequence of the batch": [
            head(ref.ln_f(stack(tok + pos_at(idx))))
        ],
        "the positions start at 1: the first position is 0 (0..T-1)": [
            head(ref.ln_f(stack(tok + pos_at(torch.arange(1, T + 1)))))
        ],
        "the token and position embeddings are multiplied: they are added": [
            head(ref.ln_f(stack(tok * pos_at(torch.arange(T)))))
        ],
        "logits are the raw scores, not probabilities: do not apply softmax (nor log_softmax)": [
            F.softmax(head(ref.ln_f(stack(x))), dim=d) for d in (-1, 0, 1)
        ]
        + [F.log_softmax(head(ref.ln_f(stack(x))), dim=-1)],
    }


def _forward_hint(what):
    return crash_hint(what, [
        (("AttributeError",), "NoneType",
         "With targets=None there is no loss to compute: return (logits, None)."),
        (None, "Expected target size",
         "F.cross_entropy reads the classes from dimension 1: flatten the logits to (B*T, "
         "vocab_size) and the targets to (B*T,) first."),
        (None, "to match target batch_size",
         "The logits and the targets must be flattened alike: (B*T, vocab_size) and (B*T,)."),
        (None, "index out of range in self",
         "An embedding was given an index beyond its table: token_embedding takes the "
         "character ids (< vocab_size), position_embedding the positions 0..T-1."),
        (None, "must match the size of tensor",
         "The token embeddings (B, T, C) and the position embeddings do not line up: this input "
         "has T = idx.size(1) = 6 positions, fewer than block_size = 8."),
    ])  # fmt: skip


def _compare_logits(name, model, ref, idx):
    """model(idx) == (the reference's logits, None), or the mistake that matches."""
    __tracebackhide__ = True
    what = f"model(idx) with idx of shape {tuple(idx.shape)}"
    want = ref(idx)[0]
    out = call(name, model, idx, what=what, hint=_forward_hint(what))
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(name, "forward should return a pair (logits, loss), also when targets is None.")
    logits, loss = out
    if loss is not None:
        fail(name, "with targets=None, return (logits, None): there is nothing to compare to.")
    if not isinstance(logits, torch.Tensor) or logits.shape != want.shape:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        fail(name, f"{what}: logits should be (B, T, vocab_size) = {tuple(want.shape)}, got "
             f"{got}.")  # fmt: skip
    if not close(logits, want, atol=1e-4):
        for mistake, candidates in _pieces(ref, idx).items():
            if any(close(logits, c, atol=1e-4) for c in candidates):
                fail(name, f"looks like {mistake}.")
        fail(name, f"{what}: the logits differ from embeddings -> blocks -> ln_f -> lm_head.")


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
    idx = torch.randint(0, 8, (2, 6), generator=g)  # T=6 < block_size=8; ids < 8 as well, so
    # that positions looked up from the ids compute (and are named) rather than crash
    targets = torch.randint(0, 13, (2, 6), generator=g)
    with torch.no_grad(), torch.random.fork_rng():
        want, want_loss = ref(idx, targets)
        for shape in ((2, 6), (1, 1), (3, 8)):  # T = 1 and T = block_size too
            x = idx if shape == (2, 6) else torch.randint(0, 8, shape, generator=g)
            _compare_logits(name, model, ref, x)
        what = "model(idx, targets)"
        out = call(name, model, idx, targets, what=what, hint=_forward_hint(what))
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
                F.cross_entropy(F.softmax(flat, dim=-1), targets.view(-1)),
                F.cross_entropy(F.log_softmax(flat, dim=-1).exp(), targets.view(-1)),
            ],
            "nll_loss was given the raw logits: it expects log-probabilities (log_softmax), "
            "which F.cross_entropy computes itself": [F.nll_loss(flat, targets.view(-1))],
            "the logits and the targets were flattened in different orders, so each score is "
            "compared with another position's target: flatten both the same way (B*T, b major)": [
                F.cross_entropy(flat, targets.t().reshape(-1)),
                F.cross_entropy(want.transpose(0, 1).reshape(-1, 13), targets.view(-1)),
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
