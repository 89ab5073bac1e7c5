"""Your GPT <-> the reference layout: per-head attention (lessons 03-05) vs fused attention.

A GPT built from lesson 05's Block keeps each head's query/key/value in its own ``Head``
(``sa.heads[h].query.weight``, ...) and the output projection in ``sa.proj``. The reference
``Block`` uses ``CausalSelfAttention``: one fused ``c_attn`` (3C, C) that ``qkv()`` splits into
q, k, v (in that order), each split into heads (head 0's rows first), and ``c_proj``. The maths
is the same, so the weights map one to one:

    c_attn.weight = cat([q_0, ..., q_{nh-1}, k_0, ..., k_{nh-1}, v_0, ..., v_{nh-1}])   # (3C, C)
    c_proj = proj

Checkpoints always hold the reference layout, so ``load_checkpoint``, ``shared.generate`` and
lessons 07-08 read any model the course trained, yours included.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shared.attention import CausalSelfAttention


def is_reference_layout(model: nn.Module) -> bool:
    """True when ``model`` is a GPT whose state_dict already has the reference's keys and shapes."""
    from shared.model import GPT

    reference = GPT(model.config).state_dict()
    mine = model.state_dict()
    return set(reference) == set(mine) and all(
        reference[k].shape == mine[k].shape for k in reference
    )


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _block_pairs(theirs: nn.Module, ref: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(their tensor, the matching view of the reference block's tensor) for one block."""
    pairs = [
        (theirs.ln1.weight, ref.ln1.weight), (theirs.ln1.bias, ref.ln1.bias),
        (theirs.ln2.weight, ref.ln2.weight), (theirs.ln2.bias, ref.ln2.bias),
    ]  # fmt: skip
    sa = theirs.sa
    if isinstance(sa, CausalSelfAttention):
        pairs += [(a, b) for a, b in zip(sa.parameters(), ref.sa.parameters(), strict=True)]
    else:  # per-head attention: heads[h].query/key/value and proj
        C = ref.sa.n_embd
        c_attn = ref.sa.c_attn.weight  # (3C, C): all q rows, then all k rows, then all v rows
        start = 0
        for head in sa.heads:
            hs = head.query.weight.size(0)
            for offset, linear in ((0, head.query), (C, head.key), (2 * C, head.value)):
                pairs.append((linear.weight, c_attn[offset + start : offset + start + hs]))
            start += hs
        pairs += [(sa.proj.weight, ref.sa.c_proj.weight), (sa.proj.bias, ref.sa.c_proj.bias)]
    up, down = _linears(theirs.ffwd)  # FeedForward: expand, then project back
    ref_up, ref_down = _linears(ref.ffwd)
    pairs += [
        (up.weight, ref_up.weight), (up.bias, ref_up.bias),
        (down.weight, ref_down.weight), (down.bias, ref_down.bias),
    ]  # fmt: skip
    return pairs


def _pairs(model: nn.Module, ref: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every parameter of ``model`` paired with its place in the reference GPT ``ref``."""
    pairs = [
        (getattr(model, name).weight, getattr(ref, name).weight)
        for name in ("token_embedding", "position_embedding", "ln_f", "lm_head")
    ]
    pairs += [(model.ln_f.bias, ref.ln_f.bias), (model.lm_head.bias, ref.lm_head.bias)]
    for theirs, ref_block in zip(model.blocks, ref.blocks, strict=True):
        try:
            pairs += _block_pairs(theirs, ref_block)
        except (AttributeError, ValueError) as exc:
            raise ValueError(
                "cannot map this block onto the reference Block: it needs ln1, sa (heads[h] with "
                f"query/key/value, and proj), ln2 and ffwd with two Linears ({exc})"
            ) from None
    for mine, theirs in pairs:
        if mine.shape != theirs.shape:
            raise ValueError(f"shape mismatch: {tuple(mine.shape)} vs {tuple(theirs.shape)}")
    covered = {id(mine) for mine, _ in pairs}
    missing = [name for name, p in model.named_parameters() if id(p) not in covered]
    if missing:
        raise ValueError(f"parameters without a place in the reference GPT: {missing[:3]}")
    return pairs


def to_reference(model: nn.Module) -> nn.Module:
    """A reference ``GPT`` (fused attention) with ``model``'s weights: the same logits."""
    from shared.model import GPT

    ref = GPT(model.config).to(next(model.parameters()).device)
    with torch.no_grad():
        for mine, place in _pairs(model, ref):
            place.copy_(mine)
    return ref.train(model.training)


def load_reference_state(model: nn.Module, state_dict: dict) -> None:
    """Load a reference-layout state_dict (a checkpoint's ``model``) into ``model``."""
    from shared.model import GPT

    ref = GPT(model.config)
    ref.load_state_dict(state_dict)
    with torch.no_grad():
        for mine, place in _pairs(model, ref):
            mine.copy_(place)
