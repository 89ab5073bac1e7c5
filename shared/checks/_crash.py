"""Translate a crash in the learner's code into one line: the exception, then its likely cause.

The causes cover the crashes learners hit most in this course (shape mismatches, a module without
``forward``, ``nn.Sequential`` given a list, float masks and indices, ...). Each says what went
wrong and why, naming at most the concept or API involved, never the line to type.
"""

from __future__ import annotations

from shared.engine.errors import one_line

# (fragment of the exception text, cause) -- the first match wins. Causes say what went wrong
# and why, naming at most the concept or API involved.
_CRASH_CAUSES: list[tuple[str, str]] = [
    (
        'is missing the required "forward" function',
        "PyTorch found no `forward` method on your class: calling a module runs its `forward`, so "
        "check the method's name and that it is indented inside the class",
    ),
    (
        "is not a module subclass",
        "nn.Sequential (like nn.ModuleList's layers) takes modules one by one as arguments; a Python "
        "list is not a module",
    ),
    (
        "tensors used as indices must be",
        "a tensor of floats was used as an index or a mask; masks must be boolean (the result of a "
        "comparison) and indices integers",
    ),
    (
        "can be converted to an index",
        "a float, or a tensor of several values, was used as an index or slice bound; indices must "
        "be integers",
    ),
    (
        "only supports boolean masks",
        "masked_fill needs a boolean mask (the result of a comparison), not 0/1 numbers",
    ),
    (
        "mat1 and mat2 shapes cannot be multiplied",
        "a Linear layer (or a matrix product) got an input whose last dimension is not the size it "
        "expects; check which size each layer is built for and what reaches it",
    ),
    (
        "must match the size of tensor",
        "two tensors whose shapes do not line up were combined: compare each one's shape with "
        "what you expect at that line (.T on a tensor with more than 2 dims reverses all of them; "
        "a buffer made for block_size must be cut to the current length T)",
    ),
    (
        "view size is not compatible",
        ".view needs the tensor's memory to be contiguous, which a transpose or slice breaks; "
        ".reshape copies when it has to",
    ),
    (
        "is invalid for input of size",
        "a view/reshape asked for a shape with a different number of elements than the tensor has",
    ),
    (
        "dimension out of range",
        "a `dim` was used that the tensor does not have: it has fewer dimensions than assumed",
    ),
    (
        "expected all tensors to be on the same device",
        "tensors on different devices were combined; everything must live on the same device",
    ),
    (
        "expected scalar type",
        "an operation got the wrong dtype (e.g. float ids or long values); check the dtypes",
    ),
    (
        "probability tensor contains either",
        "torch.multinomial got values that are not probabilities (negative, inf or NaN): it needs "
        "non-negative weights, such as the output of a softmax",
    ),
    (
        "selected index k out of range",
        "torch.topk was asked for more values than the dimension holds",
    ),
    (
        "boolean value of tensor with more than one value is ambiguous",
        "a tensor with several values was used where Python needs one True/False (`if`, `and`, "
        "`or`, `max(...)`); use tensor operations instead",
    ),
    (
        "only one element tensors can be converted",
        "a tensor with several values was turned into one Python number (.item(), float(), int())",
    ),
    (
        "does not require grad",
        "backward() was called on a value that is not connected to the parameters (computed under "
        "no_grad, or detached / turned into a float first)",
    ),
    (
        "backward through the graph a second time",
        "backward() ran twice over the same graph (e.g. on a loss kept from an earlier step)",
    ),
    (
        "'tuple' object has no attribute",
        "a tuple was used as one value: a call that returns several values (like a model's "
        "(logits, loss)) has to be unpacked first",
    ),
    (
        "'nonetype' object",
        "something was None where a value was expected: a function without `return` returns None",
    ),
    (
        "received an invalid combination of arguments",
        "a torch function got arguments it does not take: one missing or extra, two swapped, or "
        "one of the wrong type (an int where it wants a shape tuple, a float where it wants an "
        "int); compare the call with the function's documentation",
    ),
    (
        "must be tensor, not",
        "an argument of a torch function has the wrong type: the arguments are in another order "
        "than the function takes, or one is missing",
    ),
    (
        "must be int, not",
        "an argument of a torch function has the wrong type: the arguments are in another order "
        "than the function takes, or one is missing",
    ),
    (
        "does not match the length of the desired ordering",
        "permute takes the new order of *all* the dims (transpose swaps two)",
    ),
    (
        "not torch.size",
        "a tensor's whole shape (a torch.Size) was used as one number: .size(dim) or "
        ".shape[dim] gives one dimension",
    ),
    (
        "object is not iterable",
        "a single number was used where several values are expected (min/max/sum of one value, "
        "a loop or unpacking over a number)",
    ),
    (
        "division by zero",
        "something in a denominator is 0 for these arguments",
    ),
    (
        "is out of bounds for dimension",
        "an index is past the end of a dimension: check which dim is indexed and its size",
    ),
    (
        "tuple index out of range",
        "a tuple was indexed past its end: check how many values it holds",
    ),
    (
        "arrays used as indices must be of integer (or boolean) type",
        "a NumPy array of floats was used as an index or a mask; masks must be boolean",
    ),
    (
        "failed to convert value(s) to axis units",
        "matplotlib got text where it expects numbers: tick positions are numbers and their "
        "labels a separate argument",
    ),
    (
        "cannot convert float nan to integer",
        "a NaN was turned into an integer: NaN exists only among floats",
    ),
    (
        "positional argument",
        "the function or class was called with the arguments the exercise specifies, and its "
        "signature does not accept them: keep the given signature",
    ),
    (
        "argument (0 given)",
        "a function was called without the argument it needs",
    ),
    (
        "expected at least 1 argument, got 0",
        "a function was called without the argument it needs",
    ),
    (
        "missing required argument",
        "a function was called without the argument it needs",
    ),
    (
        "expected 1 argument, got 0",
        "a function was called without the argument it needs",
    ),
    (
        "unexpected keyword argument",
        "the function or class was called with the arguments the exercise specifies, and its "
        "signature does not accept them: keep the given signature",
    ),
]


def explain_crash(exc: BaseException, what: str = "your code") -> str:
    """One line for a crash in the learner's code: the exception, then its likely cause."""
    head = f"{what} raised {type(exc).__name__}: {one_line(exc, 160)}"
    if isinstance(exc, UnboundLocalError):
        return (f"{head}. A variable was read before the function assigned it: a name assigned "
                "anywhere in a function is local in all of it, even where the notebook has a "
                "global of that name.")  # fmt: skip
    if isinstance(exc, NameError):
        return (f"{head}. A name used in your code is not defined where it runs: a function or "
                "class must use its arguments (and names it defines), not variables from "
                "elsewhere in the notebook.")  # fmt: skip
    if isinstance(exc, KeyError) and "tensor(" in str(exc):
        return (f"{head}. A tensor was used as a dict key: the keys are Python ints, and a "
                "tensor never matches them (tensors hash by identity).")  # fmt: skip
    text = str(exc).lower()
    for fragment, cause in _CRASH_CAUSES:
        if fragment in text:
            return f"{head}. Likely cause: {cause}."
    return f"{head}."
