"""The command line (``python -m shared ...``: ``cli`` flags, ``commands`` work, ``pipeline``),
lesson generation (``lessons``, ``colab``) and the GIF renderer (``gif``).

It imports the reference (``shared/*.py``), the engine and grading (``shared.grading``, for
``check`` and ``grade``); none of them imports it.
"""
