"""The checks every lesson's check cells call: ``from shared.checks import check_<name>``.

``EXERCISES`` maps each lesson (notebook stem) to its exercises, in notebook order; the grader
uses it to run the installed checks against a learner's definitions, independently of the
notebook's own check cells.
"""

from shared.checks import (
    attention,
    attention_stretch,
    bigram,
    block,
    bpe,
    compress_stretch,
    data,
    generate,
    generate_stretch,
    model,
    modern,
    modern_stretch,
    train,
    train_stretch,
    viz,
)
from shared.checks._core import NOT_IMPLEMENTED, Exercise, ExerciseFailed, guard

# Each lesson's check modules, core exercises first; stretch exercises live in modules of their
# own (their Exercise entries say optional=True).
_LESSON_MODULES = {
    "01_data": (data,),
    "02_bigram": (bigram,),
    "03_self_attention": (attention,),
    "04_multihead": (attention, attention_stretch),
    "05_block": (block, model),
    "06_train": (train, train_stretch),
    "07_generate": (generate, generate_stretch),
    "08_attention_viz": (viz,),
    "09_tokenizer": (bpe,),
    "10_modern_gpt": (modern, modern_stretch, compress_stretch),
}


def _exercises_for(lesson: str, module) -> list[Exercise]:
    lessons = getattr(module, "LESSON_EXERCISES", None)
    if lessons is not None:  # a module serving several lessons splits its list per lesson
        return list(lessons.get(lesson, []))
    return list(module.EXERCISES)


EXERCISES: dict[str, list[Exercise]] = {
    lesson: [ex for module in modules for ex in _exercises_for(lesson, module)]
    for lesson, modules in _LESSON_MODULES.items()
}

# Re-export every check_* so notebooks can `from shared.checks import check_x`. Each one is
# wrapped by `guard` here, once for all modules (stretch ones included), so no check can forget
# to leave the learner's global RNG state, thread count and grad mode as it found them; the
# module's own attribute is replaced too, so `shared.checks.data.check_get_batch` is guarded.
# Exported: every check a module's exercises name, and every check_* the module itself defines
# (helpers it imports, such as _dropout.check_dropout, are not checks).
_ALL_MODULES = {id(m): m for modules in _LESSON_MODULES.values() for m in modules}
for _module in _ALL_MODULES.values():
    _named = {ex.check for lesson in _LESSON_MODULES for ex in _exercises_for(lesson, _module)}
    for _name in dir(_module):
        _value = getattr(_module, _name)
        if (
            _name.startswith("check_")
            and callable(_value)
            and (_name in _named or getattr(_value, "__module__", None) == _module.__name__)
        ):
            setattr(_module, _name, guard(_value))
            globals()[_name] = getattr(_module, _name)
del _module, _name, _value, _named, _ALL_MODULES

__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", "NOT_IMPLEMENTED"] + sorted(
    name for name in globals() if name.startswith("check_")
)
