"""The mutants ``tests.mutation`` accepts without a kill: equivalents, each with its reason."""

from __future__ import annotations

# (exercise, original statement, mutated statement) -> why no input the spec allows tells the
# mutant from the solution. "Device-only": the grader runs learner code on the CPU and its proxy
# moves every tensor to the CPU, so no check can see which device a tensor was made on.
_CONTIGUOUS = ("view and reshape return the same tensor wherever view works; reshape also "
               "accepts a non-contiguous input")  # fmt: skip
_TRANSPOSE = "transpose swaps two dims: the order of its two arguments does not matter"
_PRESENTATION = "presentation the spec does not ask for (it fixes the image, ticks and colorbar)"
_ITEM = "on a 0-dim tensor .tolist() returns the same Python float as .item()"
_BATCH_OF_ONE = "the function builds a batch of one (idx is (1, T)): index 0 is index -1"
_LOSS = "loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))"
_IDS = "ids = generate_ids(model, prompt_ids, max_new_chars, generator=generator, use_cache=False)"
_IMSHOW = "image = ax.imshow(w, cmap='viridis', vmin=0.0, vmax=1.0)"
_FIGURE = "fig = Figure(figsize=(5.5, 4.5), layout='constrained')"
_COLORBAR = "fig.colorbar(image, ax=ax, label='attention weight')"
_SPLIT = "return x.view(B, T, n_head, C // n_head).transpose(1, 2)"
_MERGE = "return y.transpose(1, 2).contiguous().view(B, T, nh * hs)"
_SPLITS = "for split, data in (('train', train_data), ('val', val_data)):"
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("bigram_forward", _LOSS, _LOSS.replace("logits.view", "logits.reshape")): _CONTIGUOUS,
    ("bigram_forward", _LOSS, _LOSS.replace("targets.view", "targets.reshape")): _CONTIGUOUS,
    ("attention_weights", "tril = torch.tril(torch.ones(T, T, device=q.device))",
     "tril = torch.tril(torch.ones(T, T))"): "device-only (the mask is made on the CPU)",
    ("attention_weights", "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
     "scores = q @ k.transpose(-1, -2) / math.sqrt(d_k)"): _TRANSPOSE,
    ("split_heads", _SPLIT, _SPLIT.replace("(1, 2)", "(2, 1)")): _TRANSPOSE,
    ("split_heads", _SPLIT, _SPLIT.replace("x.view", "x.reshape")): _CONTIGUOUS,
    ("merge_heads", _MERGE, _MERGE.replace(".view", ".reshape")): _CONTIGUOUS,
    ("merge_heads", _MERGE, _MERGE.replace("(1, 2)", "(2, 1)")): _TRANSPOSE,
    ("train_step", "optimizer.zero_grad(set_to_none=True)", "optimizer.zero_grad()"):
        "set_to_none=True is zero_grad's default (torch >= 2.0)",
    ("train_step", "optimizer.zero_grad(set_to_none=True)",
     "optimizer.zero_grad(set_to_none=False)"): "gradients zeroed instead of dropped before "
        "backward: backward then gives every parameter its gradient, so the step is the same",
    ("train_step", "return loss.item()", "return loss.tolist()"): _ITEM,
    ("estimate_loss", _SPLITS,
     "for split, data in reversed(list((('train', train_data), ('val', val_data)))):"):
        "the splits are measured in the other order: other random batches, equally valid "
        "samples of each split, and the same dict",
    ("estimate_loss", "for i in range(eval_iters):",
     "for i in reversed(list(range(eval_iters))):"): "the losses are stored in the other order: "
        "the same mean",
    ("estimate_loss", "losses = torch.zeros(eval_iters)", "losses = torch.ones(eval_iters)"):
        "every entry is overwritten before the mean is taken",
    ("estimate_loss", "out[split] = losses.mean().item()", "out[split] = losses.mean().tolist()"):
        _ITEM,
    ("estimate_loss", "losses[i] = loss.item()", "losses[i] = loss.tolist()"): _ITEM,
    ("estimate_loss", "x, y = get_batch(data, block_size, batch_size, device)",
     "x, y = get_batch(data, block_size, batch_size)"): "device-only (get_batch's default "
        "device is the CPU)",
    ("get_lr", "progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))",
     "progress = min(1.0, (step - warmup_steps) / max(0, max_steps - warmup_steps))"):
        "differs only when max_steps == warmup_steps (a ZeroDivisionError), where the spec "
        "contradicts itself (max_lr at warmup_steps and min_lr at max_steps, the same step)",
    ("sample_with_temperature", "probs = F.softmax(logits / temperature, dim=-1)",
     "probs = F.softmax(logits / temperature)"): "softmax without dim picks dim 1 for 2-D "
        "input (with a warning); the logits are (B, V), so that is dim=-1",
    ("top_k_filter", "kth = torch.topk(logits, k, dim=-1).values[..., -1:]",
     "kth = torch.topk(logits, k).values[..., -1:]"): "dim=-1 is torch.topk's default",
    ("top_p_filter", "sorted_logits, order = torch.sort(logits, dim=-1, descending=True)",
     "sorted_logits, order = torch.sort(logits, descending=True)"):
        "dim=-1 is torch.sort's default",
    ("head_weights", "return attn[layer, 0, head]", "return attn[layer, -1, head]"):
        _BATCH_OF_ONE,
    ("plot_heatmap", "ax.set_xlabel('key: looked at')", "(removed)"): _PRESENTATION,
    ("plot_heatmap", "ax.set_ylabel('query: looking')", "(removed)"): _PRESENTATION,
    ("plot_heatmap", _FIGURE, "fig = Figure(layout='constrained')"): _PRESENTATION,
    ("plot_heatmap", _FIGURE, "fig = Figure(figsize=(5.5, 4.5))"): _PRESENTATION,
    ("plot_heatmap", _IMSHOW, "image = ax.imshow(w, vmin=0.0, vmax=1.0)"): _PRESENTATION,
    ("plot_heatmap", _IMSHOW, "image = ax.imshow(w, cmap='viridis', vmax=1.0)"):
        _PRESENTATION + "; the colour range, not the values drawn",
    ("plot_heatmap", _IMSHOW, "image = ax.imshow(w, cmap='viridis', vmin=0.0)"):
        _PRESENTATION + "; the colour range, not the values drawn",
    ("plot_heatmap", _COLORBAR, "fig.colorbar(image, label='attention weight')"):
        "without ax, colorbar takes the image's own axes: the same colorbar",
    ("plot_heatmap", _COLORBAR, "fig.colorbar(image, ax=ax)"): _PRESENTATION,
    ("plot_heatmap", "w = weights.detach().float().numpy().copy()",
     "w = weights.clone().float().numpy().copy()"): "the weights come from "
        "model.attention_weights, which runs under torch.no_grad: they never require grad, "
        "so detach and clone give the same array",
    ("attention_steps", f"{_IDS}[0]", f"{_IDS}[-1]"): _BATCH_OF_ONE,
    ("attention_steps", "prompt_ids = torch.tensor([tokenizer.encode(prompt[-block_size:])])",
     "prompt_ids = torch.tensor([tokenizer.encode(prompt[:])])"): "generate_ids crops the "
        "context to the last block_size ids itself, and the steps start after the whole "
        "prompt: the same steps",
    ("attention_steps", "weights = attn[layer, 0, :, -1, :].mean(0)",
     "weights = attn[layer, -1, :, -1, :].mean(0)"): _BATCH_OF_ONE,
}  # fmt: skip

# Lessons 05, 09 and 10. Reversed loops whose order cannot matter, defaults spelled out, and
# conditions the rest of the code makes irrelevant.
_NS_TALL = "tall = G.size(0) > G.size(1)"
_GPT_LOSS = "loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))"
_COUNT = "counts[pair] = counts.get(pair, 0) + n"
_DECODE = "return b''.join((vocab[i] for i in ids)).decode('utf-8', errors='replace')"
_UTF8 = "'utf-8' is str.encode's and bytes.decode's default encoding"
_UNUSED_LOOP = "the loop variable is unused: the same number of iterations in any order"
_SHIFT = (
    "a pair's total is off by the same 1 for every pair (the default is used once, when "
    "the pair is first seen): the most frequent pair and its ties are unchanged, and the "
    "stop rule looks at whether any pair is left, not at the counts"
)
_TALL = (
    "transposing is only there to make the Gram matrix small: the iteration on X.T gives "
    "the transpose of the iteration on X (the same result up to float rounding), so which "
    "shapes get transposed does not change the answer"
)
EQUIVALENT.update({
    ("gpt_forward", "pos = torch.arange(T, device=idx.device)", "pos = torch.arange(T)"):
        "device-only (the positions are made on the CPU)",
    ("gpt_forward", _GPT_LOSS, _GPT_LOSS.replace("logits.view", "logits.reshape")): _CONTIGUOUS,
    ("gpt_forward", _GPT_LOSS, _GPT_LOSS.replace("targets.view", "targets.reshape")):
        _CONTIGUOUS,
    ("sample", "for _ in range(max_new_tokens):",
     "for _ in reversed(list(range(max_new_tokens))):"): _UNUSED_LOOP,
    ("sample", "probs = F.softmax(logits[:, -1, :], dim=-1)",
     "probs = F.softmax(logits[:, -1, :])"): "softmax without dim picks dim 1 for 2-D input "
        "(with a warning); the logits are (B, V), so that is dim=-1",
    ("pair_counts", "for pair in zip(ids, ids[1:]):",
     "for pair in reversed(list(zip(ids, ids[1:]))):"): "counting in the other order gives the "
        "same counts (dicts compare without order, and the tie rule compares pairs, not "
        "insertion order)",
    ("train_merges", "for ids in chunks:", "for ids in reversed(list(chunks)):"):
        "the counts are summed over chunks: the same totals in any order",
    ("train_merges", "for pair, n in pair_counts(ids).items():",
     "for pair, n in reversed(list(pair_counts(ids).items())):"): "the same totals in any "
        "order; ties are broken by comparing pairs, not by insertion order",
    ("train_merges", "chunks = [list(chunk.encode('utf-8')) for chunk in split_chunks(text)]",
     "chunks = [list(chunk.encode()) for chunk in split_chunks(text)]"): _UTF8,
    ("train_merges", _COUNT, _COUNT.replace("0)", "1)")): _SHIFT,
    ("train_merges", _COUNT, _COUNT.replace("0)", "-1)")): _SHIFT,
    ("encode", "ids = list(chunk.encode('utf-8'))", "ids = list(chunk.encode())"): _UTF8,
    ("encode", "while len(ids) >= 2:", "while len(ids) >= 1:"): "a chunk of one id has no "
        "adjacent pair, so the loop body finds no candidate and breaks at once",
    ("decode", _DECODE, _DECODE.replace("'utf-8', ", "")): _UTF8,
    ("newton_schulz", "for _ in range(steps):", "for _ in reversed(list(range(steps))):"):
        _UNUSED_LOOP,
    ("newton_schulz", _NS_TALL, "tall = G.size(0) >= G.size(1)"): _TALL,
    ("newton_schulz", _NS_TALL, "tall = G.size(0) < G.size(1)"): _TALL,
    ("newton_schulz", _NS_TALL, "tall = G.size(1) > G.size(1)"): _TALL,
    ("newton_schulz", _NS_TALL, "tall = G.size(-1) > G.size(1)"): _TALL,
    ("newton_schulz", _NS_TALL, "tall = G.size(0) > G.size(0)"): _TALL,
})  # fmt: skip
