"""Helpers the notebooks call that are not a component a lesson builds.

The loss ladder (``ladder``, lesson 02 on; ``modern_ladder``, lesson 10), your own GPT from your
lesson 03-05 classes (``your_gpt``, lesson 06), and the checkpoint lessons 07-08 sample from
(``lesson_checkpoint``). They use the reference and the engine; the reference never uses them.
"""
