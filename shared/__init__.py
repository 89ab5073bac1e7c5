"""Reference implementation for the *GPT from Scratch* course (Don Quijote edition).

One module per component, in the order the lessons build them:

- ``shared.data``      corpus download/cleaning, ``CharTokenizer``, ``get_batch``   (lesson 01)
- ``shared.bigram``    ``BigramLanguageModel``                                        (lesson 02)
- ``shared.attention`` ``Head``, ``MultiHeadAttention``, ``CausalSelfAttention``     (lessons 03-04)
- ``shared.block``     ``FeedForward``, ``Block``                                      (lesson 05)
- ``shared.model``     ``GPTConfig``, ``GPT``                                          (lesson 05)
- ``shared.train``     training loop, checkpoints                                      (lesson 06)
- ``shared.your_gpt``  your lesson 03-05 classes, checked, for training your own GPT  (lesson 06)
- ``shared.convert``   your per-head GPT <-> the fused reference layout (checkpoints)  (lesson 06)
- ``shared.generate``  sampling, KV cache                                              (lesson 07)
- ``shared.viz``       attention heatmaps and GIF                                      (lesson 08)
- ``shared.distributed`` several processes under torchrun (DDP), used by ``shared.train``
- ``shared.checks``    the exercise checks every lesson calls
- ``shared.course``    the machinery (CLI, grading, sandbox, lesson generation); not lesson content

Importing ``shared`` is cheap and has no side effects; import the submodule you need.
"""

__version__ = "0.1.0"
