"""Reference implementation for the *GPT from Scratch* course (Don Quijote edition).

Two layers. **The reference** (what a learner reads), one module per component, in the order
the lessons build them:

- ``shared.data``      corpus cleaning, ``CharTokenizer``, ``get_batch``       (lesson 01)
                       (``shared.download``: fetching and validating the book)
- ``shared.bigram``    ``BigramLanguageModel``; ``shared.ladder``: the loss ladder (lesson 02 on)
- ``shared.attention`` ``Head``, ``MultiHeadAttention``, ``CausalSelfAttention`` (lessons 03-04)
- ``shared.block``     ``FeedForward``, ``Block``                                (lesson 05)
- ``shared.model``     ``GPTConfig``, ``GPT``                                    (lesson 05)
- ``shared.train``     the training loop (lesson 06); ``shared.train_config``: what to train
                       and how; ``shared.train_guards``: divergence, Ctrl-C, full disks;
                       ``shared.checkpoint``: atomic saves, weights-only loads;
                       ``shared.distributed``: several processes under torchrun
                       ``shared.threads``: the thread count, measured; ``shared.progress``,
                       ``shared.train_report``: what a run says while and after it runs
- ``shared.your_gpt``  your lesson 03-05 classes, checked, for your own GPT   (lesson 06)
                       (``shared.convert``: your per-head layout <-> the fused one)
- ``shared.generate``  sampling, one loop; ``shared.kv_cache``: the KV cache  (lesson 07)
                       (``shared.lesson_checkpoint``: the model lessons 07-08 sample from)
- ``shared.viz``       attention heatmaps and steps; ``shared.viz_heads``: naming heads honestly
                                                                               (lesson 08)
- ``shared.bpe``       byte-level BPE: ``train_merges``, ``BPETokenizer``      (lesson 09)
                       (``shared.bpe_corpus``: the book as BPE ids, bits per character)
- ``shared.checks``    the exercise checks every lesson calls

**The machinery**, ``shared.course``: the command line, grading and its sandbox, lesson
generation, the GIF renderer. It imports the reference; the reference never imports it (an
import-linter contract in pyproject.toml, tested).

Importing ``shared`` is cheap and has no side effects; import the submodule you need.
"""

__version__ = "0.1.0"
