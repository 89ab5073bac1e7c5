"""Reference implementation for the *GPT from Scratch* course (Don Quijote edition).

**The reference** (what a learner reads) is the top of the package: one module per component,
in the order the lessons build them (README: "Where is what"):

- ``shared.data``       corpus cleaning, ``CharTokenizer``, ``get_batch``          (lesson 01)
- ``shared.bigram``     ``BigramLanguageModel``                                     (lesson 02)
- ``shared.attention``  ``Head``, ``MultiHeadAttention``, ``CausalSelfAttention``  (lessons 03-04)
- ``shared.block``      ``FeedForward``, ``Block``                                  (lesson 05)
- ``shared.model``      ``GPTConfig``, ``GPT``                                      (lesson 05)
- ``shared.train``      the training loop                                           (lesson 06)
- ``shared.generate``   sampling, one loop; ``shared.kv_cache``: the KV cache       (lesson 07)
- ``shared.viz``        attention heatmaps and steps; ``shared.viz_heads``: naming heads
                        honestly                                                    (lesson 08)
- ``shared.bpe``        byte-level BPE; ``shared.bpe_corpus``: the book as BPE ids,
                        bits per character                                          (lesson 09)
- ``shared.modern``     the modern GPT; ``shared.optimizers``: Muon + AdamW;
                        ``shared.compress``: prediction is compression              (lesson 10)

Below it, each in a package of its own:

- ``shared.checks``        the exercise checks every lesson calls
- ``shared.engine``        what the reference runs on: threads, progress, the run's report,
                           bookkeeping and guards, recipes, torchrun, checkpoints, downloads,
                           settings, ``CourseError``
- ``shared.lesson_tools``  helpers the notebooks call: the loss ladder, your own GPT, the
                           checkpoint lessons 07-08 sample from
- ``shared.course``        the command line, lesson generation, the GIF renderer
- ``shared.grading``       ``check`` and ``grade``: the sandbox, the judge, the gradebook

The reference never imports the lesson tools, the command line or grading; the engine never
imports them either; only the command line imports grading (import-linter contracts in
pyproject.toml, tested).

Importing ``shared`` is cheap and has no side effects; import the submodule you need.
"""

__version__ = "0.1.0"
