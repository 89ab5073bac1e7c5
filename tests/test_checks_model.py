"""The model lessons' checks (02-05): stub, reference, a different correct version, and classic
bugs, each rejected with a hint that names the mistake."""

import math

import pytest
import torch
import torch.nn as nn
from checkhelpers import assert_fails, assert_passes, stub
from torch.nn import functional as F

from shared import attention as ref_attention
from shared import bigram as ref_bigram
from shared import block as ref_block
from shared.checks import (
    EXERCISES,
    check_attention_weights,
    check_bigram_forward,
    check_block,
    check_feedforward,
    check_head,
    check_multihead,
)


def test_exercises_are_registered_for_their_lessons():
    names = {
        lesson: [ex.check for ex in exs if not ex.optional] for lesson, exs in EXERCISES.items()
    }
    assert names["02_bigram"] == ["check_bigram_forward"]
    assert names["03_self_attention"] == ["check_attention_weights", "check_head"]
    assert names["04_multihead"] == ["check_multihead"]
    assert names["05_block"] == [
        "check_feedforward",
        "check_layer_norm",
        "check_block",
        "check_gpt_forward",
        "check_sample",
    ]


# --- 02 bigram --------------------------------------------------------------------------------


def bigram_with(forward):
    return type("BigramLanguageModel", (ref_bigram.BigramLanguageModel,), {"forward": forward})


def bigram_alternative(self, idx, targets=None):
    logits = self.token_embedding_table.weight[idx]
    if targets is None:
        return logits, None
    log_probs = F.log_softmax(logits, dim=-1).flatten(0, 1)
    return logits, F.nll_loss(log_probs, targets.flatten())


def bigram_no_reshape(self, idx, targets=None):
    logits = self.token_embedding_table(idx)
    return logits, (None if targets is None else F.cross_entropy(logits, targets))


def bigram_softmax_first(self, idx, targets=None):
    logits = self.token_embedding_table(idx)
    if targets is None:
        return logits, None
    B, T, C = logits.shape
    probs = F.softmax(logits, dim=-1)
    return logits, F.cross_entropy(probs.view(B * T, C), targets.view(B * T))


def bigram_targets_transposed(self, idx, targets=None):
    logits = self.token_embedding_table(idx)
    if targets is None:
        return logits, None
    B, T, C = logits.shape
    return logits, F.cross_entropy(logits.view(B * T, C), targets.T.reshape(-1))


def bigram_returns_flat_logits(self, idx, targets=None):
    logits = self.token_embedding_table(idx)
    if targets is None:
        return logits, None
    B, T, C = logits.shape
    logits = logits.view(B * T, C)
    return logits, F.cross_entropy(logits, targets.view(B * T))


def bigram_ignores_missing_targets(self, idx, targets=None):
    logits = self.token_embedding_table(idx)
    B, T, C = logits.shape
    return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


def bigram_loss(loss_of):
    """A forward whose loss is ``loss_of(logits (B, T, C), idx, targets)``."""

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)
        return logits, (None if targets is None else loss_of(logits, idx, targets))

    return bigram_with(forward)


def _flat(t):
    return t.reshape(-1, t.size(-1)) if t.dim() == 3 else t.reshape(-1)


NOTEBOOK_VOCAB_SIZE = 65  # a global left over from another notebook


def test_bigram_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_bigram_forward, ref_bigram.BigramLanguageModel, capsys)
    assert_passes(check_bigram_forward, bigram_with(bigram_alternative), capsys)


@pytest.mark.parametrize(
    "model, fragment",
    [
        (bigram_with(stub), "not implemented yet"),
        (bigram_with(bigram_no_reshape), "flattened into one"),
        (bigram_with(bigram_softmax_first), "softmax applied before cross_entropy"),
        (bigram_with(bigram_targets_transposed), "flattened in different orders"),
        (bigram_with(bigram_returns_flat_logits), "return the (B, T, C) logits"),
        (bigram_with(bigram_ignores_missing_targets), "return (logits, None)"),
        (bigram_loss(lambda lg, i, t: F.cross_entropy(_flat(lg), _flat(t), reduction="sum")),
         "summed, not averaged"),
        (bigram_loss(lambda lg, i, t: F.cross_entropy(lg[:, -1], t[:, -1])), "last position"),
        (bigram_loss(lambda lg, i, t: F.cross_entropy(_flat(lg), _flat(i))), "idx (the inputs)"),
        (bigram_loss(lambda lg, i, t: F.cross_entropy(lg.view(-1, NOTEBOOK_VOCAB_SIZE),
                                                      _flat(t))), "logits' own shape"),
        (bigram_loss(lambda lg, i, t: F.cross_entropy(_flat(lg), _flat(t)).item()),
         "single-number tensor"),
        (bigram_loss(lambda lg, i, t: F.mse_loss(F.softmax(lg, -1), F.one_hot(t, lg.size(-1))
                                                 .float())), "expected"),
    ],
)  # fmt: skip
def test_bigram_check_names_the_mistake(model, fragment):
    error = assert_fails(check_bigram_forward, model, fragment)
    if fragment == "expected":  # no known mistake matches: the failed property, no false name
        assert "looks like" not in str(error)


# --- 03 attention weights ---------------------------------------------------------------------


def weights_alternative(q, k):
    T, d_k = q.shape[-2], q.shape[-1]
    scores = torch.einsum("...qd,...kd->...qk", q * d_k**-0.5, k)
    future = torch.arange(T)[None, :] > torch.arange(T)[:, None]
    return F.softmax(scores.masked_fill(future, -1e9), dim=-1)


def weights_bug(mask="before", scale="sqrt", dim=-1):
    def attention_weights(q, k):
        T, d_k = q.size(-2), q.size(-1)
        scores = q @ k.transpose(-2, -1)
        scores = scores / {"sqrt": math.sqrt(d_k), "none": 1.0, "d": d_k, "64": 8.0}[scale]
        tril = torch.tril(torch.ones(T, T))
        if mask == "before":
            scores = scores.masked_fill(tril == 0, float("-inf"))
        if mask == "zero":
            scores = scores.masked_fill(tril == 0, 0.0)
        if mask == "float":
            scores = scores.masked_fill(1 - tril, float("-inf"))
        if mask == "float_index":
            scores = scores.clone()
            scores[..., 1 - tril] = float("-inf")
        wei = F.softmax(scores, dim=dim)
        if mask == "after":
            wei = wei.masked_fill(tril == 0, 0.0)
        if mask == "after_inf":
            wei = wei.masked_fill(tril == 0, float("-inf"))
        return wei

    return attention_weights


def weights_3d_only(q, k):
    return ref_attention.attention_weights(q.view(-1, *q.shape[-2:]), k.view(-1, *k.shape[-2:]))


def weights_einsum_3d(q, k):
    T = q.size(-2)
    scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.size(-1))
    return F.softmax(scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")), -1)


def weights_in_place(q, k):
    q /= math.sqrt(q.size(-1))  # scales the caller's q
    return weights_bug(scale="none")(q, k)


def test_attention_weights_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_attention_weights, ref_attention.attention_weights, capsys)
    assert_passes(check_attention_weights, weights_bug(), capsys)
    assert_passes(check_attention_weights, weights_alternative, capsys)


@pytest.mark.parametrize(
    "fn, fragments",
    [
        (stub, ["not implemented yet"]),
        (weights_bug(mask="none"), ["missing causal mask"]),
        (weights_bug(dim=-2), ["softmax over the wrong dimension"]),
        (weights_bug(dim=0), ["softmax over the batch dimension"]),
        (weights_bug(scale="none"), ["missing the 1/sqrt(d_k) scale"]),
        (weights_bug(scale="d"), ["divided by d_k instead of sqrt(d_k)"]),
        (weights_bug(mask="after"), ["mask is applied after the softmax"]),
        (weights_bug(mask="after_inf"), ["mask is applied after the softmax"]),
        (weights_bug(mask="zero"), ["masked with 0 instead of -inf"]),
        (weights_bug(mask="float"), ["boolean mask"]),
        (weights_bug(mask="float_index"), ["IndexError", "masks must be boolean"]),
        (
            weights_bug(mask="none", scale="none"),
            ["missing causal mask", "missing the 1/sqrt(d_k) scale"],
        ),
        (lambda q, k: F.softmax(q @ k.transpose(-2, -1), -1)[0], ["should give weights"]),
        (weights_3d_only, ["should give weights of shape (2, 3, 5, 5)"]),
        (weights_einsum_3d, ["more leading dims"]),
        (weights_in_place, ["changed the q passed in"]),
    ],
)
def test_attention_weights_check_names_the_mistake(fn, fragments):
    assert_fails(check_attention_weights, fn, *fragments)


def test_a_constant_that_equals_sqrt_d_k_elsewhere_is_not_called_divided_by_d_k():
    # sqrt(64) = 8 = d_k for a head size of 8; with d_k = 6 and 10 it is just a wrong constant.
    error = assert_fails(check_attention_weights, weights_bug(scale="64"), "not softmax(q k^T")
    assert "looks like" not in str(error)


# --- 03 head ----------------------------------------------------------------------------------


def head_with(forward):
    return type("Head", (ref_attention.Head,), {"forward": forward})


def head_from(compute):
    """A Head whose forward and weights come from compute(self, x) -> (out, wei)."""
    methods = {
        "forward": lambda self, x: compute(self, x)[0],
        "weights": lambda self, x: compute(self, x)[1],
    }
    return type("Head", (ref_attention.Head,), methods)


def head_alternative(self, x):
    B, T, C = x.shape
    q, k, v = self.query(x), self.key(x), self.value(x)
    scores = (q @ k.mT) * q.size(-1) ** -0.5
    scores = scores.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
    wei = scores.softmax(dim=2)
    return F.dropout(wei, self.dropout.p, self.training) @ v, wei


def head_bug(bug):
    def compute(self, x):
        B, T, C = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)
        d = {"n_embd_scale": C, "global_64": 64}.get(bug, q.size(-1))
        scores = (k @ q.mT if bug == "swap" else q @ k.mT) / math.sqrt(d)
        if bug != "no_mask":
            scores = scores.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(scores, dim=-1)
        dropped = {
            "no_dropout": lambda: wei,
            "dropout_on_output": lambda: wei,
            "always_on": lambda: F.dropout(wei, self.dropout.p),
            "fixed_rate": lambda: F.dropout(wei, 0.2, self.training),
            "dropout_made_in_forward": lambda: nn.Dropout(0.1)(wei),  # always in training mode
        }.get(bug, lambda: self.dropout(wei))()
        out = dropped @ {"x_not_v": x, "k_not_v": k}.get(bug, v)
        if bug == "dropout_on_output":
            out = self.dropout(wei @ v)
        return out, (dropped if bug == "weights_after_dropout" else wei)

    return head_from(compute)


def test_head_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_head, ref_attention.Head, capsys)
    assert_passes(check_head, head_from(head_alternative), capsys)


@pytest.mark.parametrize(
    "head, fragment",
    [
        (head_with(stub), "not implemented yet"),
        (head_bug("no_mask"), "missing causal mask"),
        (head_bug("n_embd_scale"), "instead of 1/sqrt(head_size)"),
        (head_bug("swap"), "k @ q^T"),
        (head_bug("x_not_v"), "multiply x, not the values"),
        (head_bug("k_not_v"), "multiply the keys"),
        (head_bug("no_dropout"), "dropout is never applied in training mode"),
        (head_bug("always_on"), "random in eval mode"),
        (head_bug("dropout_made_in_forward"), "created inside forward"),
        (head_bug("fixed_rate"), "does not follow the `dropout` argument"),
        (head_bug("dropout_on_output"), "to the head's output instead of the attention weights"),
        (head_bug("weights_after_dropout"), "before dropout"),
        (head_bug("global_64"), "not softmax(q k^T / sqrt(head_size))"),
        (type("Head", (ref_attention.Head,), {"forward": nn.Module.forward}), "no `forward`"),
    ],
)
def test_head_check_names_the_mistake(head, fragment):
    error = assert_fails(check_head, head, fragment)
    if fragment.startswith("not softmax"):
        assert "looks like" not in str(error)


# --- 04 multi-head ----------------------------------------------------------------------------


def mha_with(forward):
    return type("MultiHeadAttention", (ref_attention.MultiHeadAttention,), {"forward": forward})


def mha_alternative(self, x):
    outs = [head(x) for head in self.heads]
    return self.dropout(F.linear(torch.concat(outs, dim=2), self.proj.weight, self.proj.bias))


def mha_bug(bug):
    def forward(self, x):
        B, T, C = x.shape
        outs = [h(x) for h in self.heads]
        if bug == "cat_time":
            out = torch.cat(outs, dim=1)
        elif bug == "sum":
            out = sum(outs)
        elif bug == "stack_reshape":
            out = torch.stack(outs, dim=-1).view(B, T, C)
        elif bug == "first_head":
            return self.dropout(outs[0])
        elif bug == "four_heads":  # the notebook's head count, hard-coded
            out = torch.cat([self.heads[i](x) for i in range(4)], dim=-1)
        elif bug == "four_heads_view":  # ... or hard-coded in a reshape
            out = torch.stack(outs, dim=2).view(B, T, 4 * outs[0].size(-1))
        else:
            out = torch.cat(outs, dim=-1)
        if bug == "dropout_before_proj":
            return self.proj(self.dropout(out))
        if bug != "no_proj":
            out = self.proj(out)
        if bug == "proj_twice":
            out = self.proj(out)
        if bug == "always_on":
            return F.dropout(out, self.dropout.p)
        if bug == "fixed_rate":
            return F.dropout(out, 0.1, self.training)
        if bug != "no_dropout":
            out = self.dropout(out)
        return out

    return mha_with(forward)


def test_multihead_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_multihead, ref_attention.MultiHeadAttention, capsys)
    assert_passes(check_multihead, mha_with(mha_alternative), capsys)


@pytest.mark.parametrize(
    "mha, fragment",
    [
        (mha_with(stub), "not implemented yet"),
        (mha_bug("no_proj"), "missing output projection"),
        (mha_bug("cat_time"), "joined along time or the batch"),
        (mha_bug("sum"), "the size of one head"),
        (mha_bug("stack_reshape"), "interleaves their channels"),
        (mha_bug("first_head"), "the size of one head"),
        (mha_bug("proj_twice"), "applied twice"),
        (mha_bug("no_dropout"), "dropout is never applied in training mode"),
        (mha_bug("dropout_before_proj"), "before the output projection"),
        (mha_bug("always_on"), "random in eval mode"),
        (mha_bug("fixed_rate"), "does not follow the `dropout` argument"),
        (mha_bug("four_heads"), "a head count is hard-coded"),
        (mha_bug("four_heads_view"), "a head count is hard-coded"),
    ],
)
def test_multihead_check_names_the_mistake(mha, fragment):
    assert_fails(check_multihead, mha, fragment)


# --- 05 feed-forward and block ----------------------------------------------------------------


def feedforward(layers):
    """A FeedForward whose __init__ builds ``layers(n_embd, dropout, activation)``."""

    class FeedForward(nn.Module):
        def __init__(self, n_embd, dropout=0.0, activation="gelu"):
            super().__init__()
            self.net = nn.Sequential(*layers(n_embd, dropout, activation))

        def forward(self, x):
            return self.net(x)

    return FeedForward


def act(activation):
    return nn.GELU() if activation == "gelu" else nn.ReLU()


def ff_alternative(n, p, a):
    return [nn.Linear(n, 4 * n), act(a), nn.Dropout(0.0), nn.Linear(4 * n, n), nn.Dropout(p)]


class FeedForwardStub(nn.Module):
    def __init__(self, n_embd, dropout=0.0, activation="gelu"):
        super().__init__()
        stub()


def ff_gelu_tanh(n, p, a):
    gelu = nn.GELU(approximate="tanh")
    return [
        nn.Linear(n, 4 * n),
        gelu if a == "gelu" else nn.ReLU(),
        nn.Linear(4 * n, n),
        nn.Dropout(p),
    ]


class FeedForwardList(nn.Module):  # nn.Sequential given one list
    def __init__(self, n_embd, dropout=0.0, activation="gelu"):
        super().__init__()
        self.net = nn.Sequential(
            [nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd)]
        )

    def forward(self, x):
        return self.net(x)


class FeedForwardFunctionalDropout(nn.Module):  # F.dropout without training=: on in eval too
    def __init__(self, n_embd, dropout=0.0, activation="gelu"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), act(activation), nn.Linear(4 * n_embd, n_embd)
        )
        self.p = dropout

    def forward(self, x):
        return F.dropout(self.net(x), self.p)


NOTEBOOK_N_EMBD = 32


def test_feedforward_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_feedforward, ref_block.FeedForward, capsys)
    assert_passes(check_feedforward, feedforward(ff_alternative), capsys)
    assert_passes(check_feedforward, feedforward(ff_gelu_tanh), capsys)


@pytest.mark.parametrize(
    "ff, fragment",
    [
        (FeedForwardStub, "not implemented yet"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), nn.Linear(4 * n, n), nn.Dropout(p)]),
         "missing non-linearity"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), nn.ReLU(), nn.Linear(4 * n, n)]),
         "the network uses RELU"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), nn.GELU(), nn.Linear(4 * n, n), nn.Dropout(p)]),
         "the `activation` argument"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), act(a), nn.Linear(4 * n, n)]),
         "dropout is never applied in training mode"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), act(a), nn.Linear(4 * n, n), nn.Dropout(0.2)]),
         "does not follow the `dropout` argument"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), act(a), nn.Dropout(p), nn.Linear(4 * n, n)]),
         "dropout is applied to the hidden layer"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), act(a), nn.Linear(4 * n, n), act(a), nn.Dropout(p)]),
         "also follows the last Linear"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 2 * n), act(a), nn.Linear(2 * n, n)]), "expand 4x"),
        (feedforward(lambda n, p, a: [nn.Linear(NOTEBOOK_N_EMBD, 4 * NOTEBOOK_N_EMBD), act(a),
                                      nn.Linear(4 * NOTEBOOK_N_EMBD, n)]), "n_embd argument"),
        (FeedForwardList, "not a module"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n), nn.GELU, nn.Linear(4 * n, n)]),
         "without calling it"),
        (feedforward(lambda n, p, a: [nn.Linear(n, 4 * n, bias=False), act(a), nn.Linear(4 * n, n), nn.Dropout(p)]),
         "with a bias"),
        (FeedForwardFunctionalDropout, "random in eval mode"),
    ],
)  # fmt: skip
def test_feedforward_check_names_the_mistake(ff, fragment):
    assert_fails(check_feedforward, ff, fragment)


def block_with(forward):
    return type("Block", (ref_block.Block,), {"forward": forward})


def block_alternative(self, x):
    attended = self.sa(self.ln1(x))
    x = torch.add(x, attended)
    return x.add(self.ffwd(self.ln2(x)))


def block_bug(bug):
    def forward(self, x):
        if bug == "post_norm":
            x = self.ln1(x + self.sa(x))
            return self.ln2(x + self.ffwd(x))
        if bug == "no_residual_attention":
            x = self.sa(self.ln1(x))
            return x + self.ffwd(self.ln2(x))
        if bug == "no_residual_ffwd":
            x = x + self.sa(self.ln1(x))
            return self.ffwd(self.ln2(x))
        if bug == "parallel":
            return x + self.sa(self.ln1(x)) + self.ffwd(self.ln2(x))
        if bug == "one_layernorm":
            x = x + self.sa(self.ln1(x))
            return x + self.ffwd(self.ln1(x))
        if bug == "normalised_residual":
            x = self.ln1(x)
            x = x + self.sa(x)
            return x + self.ffwd(self.ln2(x))
        if bug == "in_place":
            x += self.sa(self.ln1(x))
            x += self.ffwd(self.ln2(x))
            return x
        if bug == "ffwd_first":
            x = x + self.ffwd(self.ln2(x))
            return x + self.sa(self.ln1(x))
        if bug == "sa_twice":
            x = x + self.sa(self.ln1(x))
            return x + self.sa(self.ln2(x))
        if bug == "ffwd_twice":
            x = x + self.ffwd(self.ln1(x))
            return x + self.ffwd(self.ln2(x))
        if bug == "residual_twice":
            x = x + x + self.sa(self.ln1(x))
            return x + x + self.ffwd(self.ln2(x))
        if bug == "no_attention":
            return x + self.ffwd(self.ln2(x))
        if bug == "no_ffwd":
            return x + self.sa(self.ln1(x))
        if bug == "subtracted":
            x = x - self.sa(self.ln1(x))
            return x + self.ffwd(self.ln2(x))
        if bug == "extra_dropout":
            x = x + F.dropout(self.sa(self.ln1(x)), 0.1, self.training)
            return x + self.ffwd(self.ln2(x))
        raise AssertionError(bug)

    return block_with(forward)


def test_block_check_accepts_reference_and_alternative(capsys):
    assert_passes(check_block, ref_block.Block, capsys)
    assert_passes(check_block, block_with(block_alternative), capsys)


@pytest.mark.parametrize(
    "block, fragment",
    [
        (block_with(stub), "not implemented yet"),
        (block_bug("post_norm"), "post-norm instead of pre-norm"),
        (block_bug("no_residual_attention"), "missing residual connection around the attention"),
        (block_bug("no_residual_ffwd"), "missing residual connection around the feed-forward"),
        (block_bug("parallel"), "the feed-forward sees the block's input"),
        (block_bug("one_layernorm"), "swapped or reused"),
        (block_bug("normalised_residual"), "carries the normalised x"),
        (block_bug("in_place"), "changed the x passed in"),
        (block_bug("ffwd_first"), "feed-forward runs before the attention"),
        (block_bug("extra_dropout"), "adds no randomness of its own"),
        (block_bug("sa_twice"), "attention is used twice"),
        (block_bug("ffwd_twice"), "feed-forward is used twice"),
        (block_bug("residual_twice"), "residual is added twice"),
        (block_bug("no_attention"), "the attention step is missing"),
        (block_bug("no_ffwd"), "the feed-forward step is missing"),
        (block_bug("subtracted"), "subtracted from the stream"),
    ],
)
def test_block_check_names_the_mistake(block, fragment):
    assert_fails(check_block, block, fragment)


@pytest.mark.parametrize(
    "check, target",
    [
        (check_bigram_forward, bigram_with(stub)),
        (check_bigram_forward, bigram_with(bigram_no_reshape)),
        (check_attention_weights, stub),
        (check_head, head_with(stub)),
        (check_multihead, mha_bug("cat_time")),
        (check_feedforward, FeedForwardStub),
        (check_block, block_with(stub)),
    ],
)
def test_hints_come_without_a_chained_traceback(check, target):
    error = assert_fails(check, target)
    assert error.__context__ is None  # the learner sees one message, not two tracebacks
