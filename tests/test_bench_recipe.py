"""benchmarks/bench_recipe.py: the FLOPs formula, the candidate syntax and the WSD schedule
(no timed test: the timings live in benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from shared.engine.train_config import modern_train_config, with_overrides
from shared.modern import ModernConfig, ModernGPT

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recipe.py"
spec = importlib.util.spec_from_file_location("bench_recipe", PATH)
bench_recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_recipe)


@pytest.mark.parametrize(
    ("n_layer", "n_embd", "block_size", "vocab"), [(2, 64, 32, 10), (3, 32, 16, 7)]
)
def test_flops_per_token_is_6n_plus_attention(n_layer, n_embd, block_size, vocab):
    sizes = dict(n_layer=n_layer, n_head=2, n_embd=n_embd, block_size=block_size)
    model = ModernGPT(ModernConfig(vocab_size=vocab, **sizes))
    flops = bench_recipe.flops_per_token(model, with_overrides(modern_train_config(), **sizes))
    # per block: qkv 3C^2 + proj C^2 + MLP 4C^2 + 4C^2; the untied head C x V; no embedding
    n_matmul = n_layer * 12 * n_embd**2 + n_embd * vocab
    assert flops["n_matmul"] == n_matmul
    assert flops["per_token"] == 6 * n_matmul + 12 * n_layer * block_size * n_embd


def test_parse_candidate_types_and_bad_keys():
    label, values = bench_recipe.parse_candidate("w:n_embd=192,muon_lr=0.03,vocab=512,mlp=swiglu")
    assert (label, values) == ("w", {"n_embd": 192, "muon_lr": 0.03, "vocab": 512, "mlp": "swiglu"})
    with pytest.raises(SystemExit, match="not key=value with a known key"):
        bench_recipe.parse_candidate("x:n_embed=192")


def test_wsd_schedule_warms_up_holds_then_decays_to_min_lr():
    config = with_overrides(modern_train_config(), time_budget=100.0, warmup_iters=10)
    get_lr = bench_recipe.wsd_lr(cooldown=0.2)
    peak, low = config.learning_rate, config.min_lr
    assert get_lr(0, config, 0.0) == pytest.approx(peak / 10)
    assert get_lr(50, config, 50.0) == pytest.approx(peak)  # flat until 80% of the budget
    assert get_lr(90, config, 90.0) == pytest.approx((peak + low) / 2)
    assert get_lr(99, config, 100.0) == pytest.approx(low)
