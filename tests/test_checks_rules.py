"""Rules every exercise check keeps (shared/checks/_core.py): it accepts our solution, and
whether it passes or fails it leaves the learner's global state (the RNGs of torch, numpy and
``random``, the thread count, grad mode) exactly as it found it."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from checkhelpers import stub

import shared.checks
from shared import attention, bigram, block, bpe, data, generate, model, modern, train, viz


def _attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0):
    return viz.attention_steps(model, tokenizer, prompt, max_new_chars, layer=layer, seed=seed)


class _StubModule(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        stub()


SOLUTIONS = {
    "check_tokenizer": data.CharTokenizer,
    "check_get_batch": data.get_batch,
    "check_bigram_forward": bigram.BigramLanguageModel,
    "check_attention_weights": attention.attention_weights,
    "check_head": attention.Head,
    "check_multihead": attention.MultiHeadAttention,
    "check_feedforward": block.FeedForward,
    "check_layer_norm": block.LayerNorm,
    "check_block": block.Block,
    "check_gpt_forward": model.GPT,
    "check_sample": lambda model, idx, n, generator=None: generate.generate_ids(
        model, idx, n, generator=generator, use_cache=False
    ),
    "check_train_step": train.train_step,
    "check_estimate_loss": train.estimate_loss,
    "check_sample_with_temperature": generate.sample_with_temperature,
    "check_top_k_filter": generate.top_k_filter,
    "check_head_weights": viz.head_weights,
    "check_plot_heatmap": viz.plot_head,
    "check_attention_steps": _attention_steps,
    "check_pair_counts": bpe.pair_counts,
    "check_merge_pair": bpe.merge_pair,
    "check_train_merges": bpe.train_merges,
    "check_encode": lambda text, merges: bpe.BPETokenizer(merges).encode(text),
    "check_decode": lambda ids, merges: bpe.BPETokenizer(merges).decode(ids),
    "check_rmsnorm": modern.RMSNorm,
    "check_apply_rope": modern.apply_rope,
    "check_relu2_mlp": modern.ReluSquaredMLP,
}
CORE = [ex.check for exs in shared.checks.EXERCISES.values() for ex in exs if not ex.optional]


def test_every_core_exercise_has_a_solution_here():
    assert sorted(set(CORE)) == sorted(SOLUTIONS)


def _global_state():
    return (
        torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
        torch.get_num_threads(), torch.is_grad_enabled(),
    )  # fmt: skip


def _same_state(a, b) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.mark.parametrize("check_name", sorted(SOLUTIONS))
def test_checks_leave_every_global_rng_alone(check_name, capsys):
    check = getattr(shared.checks, check_name)
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = _global_state()
    check(SOLUTIONS[check_name])  # passes
    assert "PASSED" in capsys.readouterr().out
    assert _same_state(_global_state(), before)
    with torch.no_grad():  # a failing check restores the state too, grad mode included
        inside = _global_state()
        with pytest.raises(shared.checks.ExerciseFailed):
            check(_StubModule if isinstance(SOLUTIONS[check_name], type) else stub)
        assert _same_state(_global_state(), inside)


def test_every_check_is_guarded_where_it_is_defined_too():
    for name in CORE:
        assert getattr(shared.checks, name)._guarded
    assert shared.checks.data.check_get_batch._guarded


# --- the helpers every check (stretch ones included) builds on -----------------------------------


def test_call_names_an_input_changed_in_place_and_leaves_copies_alone():
    from shared.checks._calls import call

    def scale_in_place(logits, t):
        return logits.div_(t)

    x = torch.ones(2, 3)
    with pytest.raises(shared.checks.ExerciseFailed, match="changed the logits passed in"):
        call("demo", scale_in_place, x, 2.0)
    assert torch.equal(
        call("demo", lambda logits, t: logits / t, torch.ones(2), 2.0), torch.ones(2) / 2
    )
    assert call("demo", scale_in_place, torch.ones(2), 2.0, inputs_may_change=True) is not None


def test_call_tells_a_module_without_forward_from_the_stub():
    from shared.checks._calls import call

    class NoForward(torch.nn.Module):
        pass

    with pytest.raises(shared.checks.ExerciseFailed) as info:
        call("demo", NoForward(), torch.ones(1))
    assert "no `forward` method" in str(info.value)
    assert "not implemented yet" not in str(info.value)
    with pytest.raises(shared.checks.ExerciseFailed, match="not implemented yet"):
        call("demo", stub)


@pytest.mark.parametrize(
    "crash, cause",
    [
        (lambda: torch.nn.Sequential([torch.nn.ReLU()]), "takes modules one by one"),
        (lambda: torch.ones(3)[torch.ones(3)], "masks must be boolean"),
        (lambda: torch.nn.Linear(4, 2)(torch.ones(3, 5)), "the size it expects"),
        (lambda: torch.ones(2, 3).transpose(0, 1).view(6), ".reshape copies"),
        (lambda: undefined_name, "not variables from elsewhere in the notebook"),  # noqa: F821
        (lambda: torch.multinomial(torch.tensor([-1.0, 2.0]), 1), "not probabilities"),
    ],
)
def test_common_crashes_get_their_likely_cause(crash, cause):
    from shared.checks._calls import call

    with pytest.raises(shared.checks.ExerciseFailed) as info:
        call("demo", crash)
    assert cause in str(info.value)
    assert info.value.__context__ is None  # one message, not a chained traceback


def test_a_mistake_is_named_only_when_its_result_matches():
    from shared.checks._core import matching_mistake

    got = torch.tensor([1.0, 2.0])
    mistakes = {
        "crashes": lambda: torch.ones(3) @ torch.ones(2),  # does not apply: skipped
        "far": torch.tensor([1.0, 2.5]),
        "lazy match": lambda: torch.tensor([1.0, 2.0]),
    }
    assert matching_mistake(got, mistakes) == "lazy match"
    assert matching_mistake(got, {"far": torch.tensor([1.0, 2.5])}) is None
