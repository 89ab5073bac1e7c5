"""The checks every lesson's check cells call: ``from shared.checks import check_<name>``.

``EXERCISES`` maps each lesson (notebook stem) to its exercises, in notebook order; the grader
uses it to run the installed checks against a learner's definitions, independently of the
notebook's own check cells.
"""

from shared.checks import (
    attention,
    bigram,
    block,
    data,
    generate,
    model_stretch,
    train,
    train_stretch,
    viz,
)
from shared.checks._core import NOT_IMPLEMENTED, Exercise, ExerciseFailed

# Each lesson's check modules, core exercises first; stretch exercises live in modules of their
# own (their Exercise entries say optional=True).
_LESSON_MODULES = {
    "01_data": (data,),
    "02_bigram": (bigram,),
    "03_self_attention": (attention,),
    "04_multihead": (attention,),
    "05_block": (block, model_stretch),
    "06_train": (train, train_stretch),
    "07_generate": (generate,),
    "08_attention_viz": (viz,),
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

# Re-export every check_* so notebooks can `from shared.checks import check_x`.
_ALL_MODULES = {id(m): m for modules in _LESSON_MODULES.values() for m in modules}
for _module in _ALL_MODULES.values():
    for _name in dir(_module):
        if _name.startswith("check_"):
            globals()[_name] = getattr(_module, _name)
del _module, _name, _ALL_MODULES

__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", "NOT_IMPLEMENTED"] + sorted(
    name for name in globals() if name.startswith("check_")
)
