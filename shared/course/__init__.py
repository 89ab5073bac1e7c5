"""The course machinery: CLI, grading, sandboxing, lesson generation, the GIF renderer.

It imports the reference layer (``shared/*.py``); the reference never imports it.
"""
