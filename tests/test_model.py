"""GPT, its config, Block/FeedForward and the bigram baseline: real behaviour on tiny models."""

import math

import pytest
import torch

from shared.bigram import BigramLanguageModel
from shared.block import Block, FeedForward
from shared.generate import generate_ids
from shared.kv_cache import forward_with_cache
from shared.model import GPT, GPTConfig

V = 92  # the Quijote vocabulary size
TINY = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_gpt(**overrides) -> GPT:
    return GPT(GPTConfig(**{**TINY, **overrides}))


# --- config ---------------------------------------------------------------------------------


def test_config_round_trips_through_plain_dict():
    config = GPTConfig(**TINY, dropout=0.1)
    data = config.to_dict()
    assert all(type(v) in (int, float) for v in data.values())
    assert GPTConfig.from_dict(data) == config


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(dropout=1.0), "dropout"),
        (dict(n_layer=0), "n_layer"),
    ],
)
def test_config_rejects_impossible_values(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**TINY, **bad})


def test_config_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match="n_layers"):
        GPTConfig.from_dict({**TINY, "n_layers": 3})


# --- GPT ------------------------------------------------------------------------------------


def test_logits_shape_and_loss_only_with_targets():
    model = tiny_gpt()
    idx = torch.randint(0, V, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V) and loss is None
    _, loss = model(idx, idx)
    assert loss.ndim == 0


def test_initial_loss_is_about_ln_vocab():
    model = tiny_gpt(n_embd=64, n_layer=4, n_head=4)
    idx = torch.randint(0, V, (8, 16))
    targets = torch.randint(0, V, (8, 16))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(V)) < 0.1


def test_too_long_input_says_the_maximum():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    model(torch.zeros(1, 16, dtype=torch.long))  # exactly block_size is fine


def test_gpt_is_causal():
    model = tiny_gpt().eval()
    idx = torch.randint(0, V, (2, 16))
    logits, _ = model(idx)
    for t in (0, 5, 14):
        changed = idx.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % V
        logits_changed, _ = model(changed)
        torch.testing.assert_close(logits[:, : t + 1], logits_changed[:, : t + 1])
        assert not torch.allclose(logits[:, t + 1 :], logits_changed[:, t + 1 :])


def test_block_is_causal_and_keeps_shape():
    block = Block(32, 4, block_size=8)
    x = torch.randn(2, 8, 32)
    out = block(x)
    assert out.shape == x.shape
    changed = x.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(block(changed)[:, :4], out[:, :4])


def test_block_is_pre_norm_residual():
    block = Block(32, 4, block_size=8)
    x = torch.randn(2, 8, 32)
    h = x + block.sa(block.ln1(x))
    torch.testing.assert_close(block(x), h + block.ffwd(block.ln2(h)))


def test_feedforward_expands_four_times_and_checks_activation():
    ff = FeedForward(32)
    assert ff.net[0].out_features == 128 and ff(torch.randn(2, 3, 32)).shape == (2, 3, 32)
    assert isinstance(FeedForward(32, activation="relu").net[1], torch.nn.ReLU)
    with pytest.raises(ValueError, match="activation"):
        FeedForward(32, activation="tanh")


def test_eval_mode_is_deterministic_with_dropout():
    model = tiny_gpt(dropout=0.3)
    idx = torch.randint(0, V, (2, 16))
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])


def test_gradients_reach_every_parameter():
    model = tiny_gpt()
    idx = torch.randint(0, V, (4, 16))
    _, loss = model(idx, torch.randint(0, V, (4, 16)))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_overfits_a_single_batch():
    model = tiny_gpt(n_embd=64, n_head=4)
    idx = torch.randint(0, V, (4, 16))
    targets = torch.randint(0, V, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1


def test_num_params_counts_every_parameter():
    model = tiny_gpt()
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    embeddings = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    assert model.num_params(non_embedding=True) == model.num_params() - embeddings


def test_attention_weights_for_every_layer_and_head():
    model = tiny_gpt(dropout=0.2).train()
    idx = torch.randint(0, V, (3, 9))
    wei = model.attention_weights(idx)
    assert wei.shape == (2, 3, 2, 9, 9)
    torch.testing.assert_close(wei.sum(-1), torch.ones(2, 3, 2, 9))
    assert torch.all(wei.triu(diagonal=1) == 0)
    assert model.training  # mode restored
    torch.testing.assert_close(model.attention_weights(idx), wei)  # no dropout inside


def test_kv_cache_matches_the_full_forward():
    model = tiny_gpt(n_layer=3).eval()
    idx = torch.randint(0, V, (2, 16))
    full, _ = model(idx)
    logits, cache = forward_with_cache(model, idx[:, :6])  # the prompt in one go
    pieces = [logits]
    for t in range(6, 16):  # then one token at a time
        logits, cache = forward_with_cache(model, idx[:, t : t + 1], cache)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(cache) == 3 and cache[0][0].shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match="block_size=16"):
        forward_with_cache(model, idx[:, :1], cache)


def test_kv_cache_with_several_new_tokens_at_once():
    model = tiny_gpt().eval()
    idx = torch.randint(0, V, (2, 12))
    full, _ = model(idx)
    first, cache = forward_with_cache(model, idx[:, :5])
    rest, cache = forward_with_cache(model, idx[:, 5:], cache)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_gpt_builds_every_block_from_the_given_class():
    class CountingBlock(Block):
        made = 0

        def __init__(self, n_embd, n_head, block_size, dropout):
            super().__init__(n_embd, n_head, block_size, dropout)
            CountingBlock.made += 1

    model = GPT(
        GPTConfig(vocab_size=V, block_size=16, n_layer=3, n_head=2, n_embd=32), CountingBlock
    )
    assert CountingBlock.made == 3 and all(isinstance(b, CountingBlock) for b in model.blocks)


def test_generate_appends_tokens_and_crops_context():
    model = tiny_gpt().eval()
    g = torch.Generator().manual_seed(0)
    start = torch.zeros(2, 1, dtype=torch.long)
    for use_cache in (False, True):
        out = generate_ids(model, start, 40, generator=g, use_cache=use_cache)  # > block_size
        assert out.shape == (2, 41) and out.max() < V


# --- bigram ---------------------------------------------------------------------------------


def test_bigram_logits_are_rows_of_the_table():
    model = BigramLanguageModel(V)
    idx = torch.randint(0, V, (3, 5))
    logits, loss = model(idx)
    assert loss is None
    torch.testing.assert_close(logits, model.token_embedding_table.weight[idx])
    targets = torch.randint(0, V, (3, 5))
    _, loss = model(idx, targets)
    log_probs = torch.log_softmax(logits, dim=-1)
    expected = -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, expected)


def test_bigram_learns_a_deterministic_sequence():
    model = BigramLanguageModel(5)
    data = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.3)
    for _ in range(100):
        _, loss = model(data[:, :-1], data[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    out = generate_ids(model, torch.tensor([[0]]), 9, generator=torch.Generator().manual_seed(0))
    assert out.tolist() == data.tolist()
