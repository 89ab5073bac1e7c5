"""The proxy side of ``shared.grading.remote``: ``Remote``, the stand-in for an object of the other
process, and the rules the judge serves the sandbox by (which attributes, operators and torch
functions a learner's code may reach through a proxy).
"""

from __future__ import annotations

import inspect
import sys
import types

from shared.grading.remote_values import (
    TRUSTED_TOPS,
    RemoteError,
    _path,
    _resolve,
)

OPERATORS = {
    "__getitem__", "__setitem__", "__delitem__", "__len__", "__iter__", "__next__",
    "__contains__", "__bool__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
    "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__invert__", "__and__",
    "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__int__", "__float__", "__index__",
    "__enter__", "__exit__", "__str__", "__repr__", "__format__", "__round__", "__reversed__",
    "__lshift__", "__rshift__", "__iadd__", "__isub__", "__imul__", "__itruediv__",
}  # fmt: skip
SAFE_DUNDERS = {"__name__", "__qualname__", "__doc__", "__module__"}
TORCH_MODULES = (
    "torch", "torch.functional", "torch.nn.functional", "torch.linalg", "torch.special", "torch.fft",
    "torch._C._nn", "torch._C._linalg", "torch._C._special", "torch._C._fft", "torch._C._VariableFunctions",
)  # fmt: skip
TORCH_DENIED = {
    "save", "load", "from_file", "set_default_dtype", "set_default_device", "set_num_threads",
    "set_num_interop_threads", "set_printoptions", "set_grad_enabled", "use_deterministic_algorithms",
    "set_default_tensor_type", "set_rng_state", "manual_seed", "seed", "compile", "hub", "ops",
    "library", "jit", "export", "autograd", "overrides", "set_anomaly_enabled", "set_warn_always",
}  # fmt: skip


# ------------------------------------------------------------------------------- proxies

_PROXY_TYPES: dict = {}
_SHADOWS: dict = {}


def _describe(obj) -> dict:
    import functools

    cls = type(obj)
    kind = "class" if isinstance(obj, type) else "object"
    functions = (types.FunctionType, types.MethodType, types.BuiltinFunctionType)
    if isinstance(obj, (*functions, functools.partial)):
        kind = "function"
    bases = [_path(c) for c in cls.__mro__ if c.__module__.split(".")[0] in TRUSTED_TOPS]
    desc = {"name": cls.__name__, "path": _path(cls), "bases": bases, "kind": kind}
    if kind != "object":  # what it is itself: the grader looks for the reference here
        mro = obj.__mro__ if isinstance(obj, type) else (obj,)
        desc["own"] = [_path(c) for c in mro][:30]
    return desc


def _shadow(desc: dict):
    """The class a proxy reports (``isinstance``): the real one when trusted, else a stand-in."""
    key = (desc["path"], tuple(desc["bases"]), desc["kind"])
    if key not in _SHADOWS:
        real = _resolve(desc["path"])
        if desc["kind"] == "class":
            real = type
        elif desc["kind"] == "function":
            real = None  # no stand-in may claim FunctionType: inspect would take it apart
        if not isinstance(real, type):
            bases = [b for b in map(_resolve, desc["bases"]) if isinstance(b, type)]
            bases = [b for b in bases if b not in (object,) and _subclassable(b)][:1]
            module, _, qualname = desc["path"].partition(":")
            real = type(desc["name"], tuple(bases) or (object,), {"__module__": module})
            real.__qualname__ = qualname or desc["name"]
        _SHADOWS[key] = real
    return _SHADOWS[key]


def _subclassable(cls) -> bool:
    try:
        type("probe", (cls,), {})
        return True
    except TypeError:
        return False


class Remote:
    """An object that lives in the other process; everything done to it is a request there."""

    __slots__ = ("_link", "_handle", "_desc", "__weakref__")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__") and name not in SAFE_DUNDERS:
            raise AttributeError(name)
        return self._link.request("getattr", h=self._handle, name=name)

    def __setattr__(self, name, value):
        if name in Remote.__slots__:
            object.__setattr__(self, name, value)
        else:
            self._link.request("setattr", h=self._handle, name=name, value=value)

    def __call__(self, *args, **kwargs):
        return self._link.request("call", h=self._handle, args=args, kwargs=kwargs)

    @property
    def __class__(self):
        return _shadow(self._desc)

    @property
    def __signature__(self):
        params = self._link.request("signature", h=self._handle)
        if params is None:
            raise ValueError("no signature")
        return inspect.Signature(
            [
                inspect.Parameter(name, kind, **({"default": None} if default else {}))
                for name, kind, default in params
            ]
        )

    def __hash__(self):
        return hash((id(self._link), self._handle))

    @classmethod
    def __torch_function__(cls, func, types_=(), args=(), kwargs=None):
        link = next(x._link for x in _walk((args, kwargs)) if isinstance(x, Remote))
        return link.request("torch", func=_torch_name(func), args=args, kwargs=kwargs or {})


def _operator(name):
    def method(self, *args):
        return self._link.request("method", h=self._handle, name=name, args=args, kwargs={})

    method.__name__ = name
    return method


for _name in OPERATORS:
    setattr(Remote, _name, _operator(_name))
del _name


def _walk(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    else:
        yield value


def _torch_name(func) -> str:
    import torch

    name = getattr(func, "__name__", "")
    if getattr(torch.Tensor, name, None) is func or "Tensor" in getattr(func, "__qualname__", ""):
        return "Tensor." + name
    return f"{getattr(func, '__module__', '') or 'torch'}:{name}"


def _proxy(link, handle: int, desc: dict):
    key = desc["name"]
    if key not in _PROXY_TYPES:
        _PROXY_TYPES[key] = type(key, (Remote,), {"__slots__": ()})
    proxy = object.__new__(_PROXY_TYPES[key])
    object.__setattr__(proxy, "_link", link)
    object.__setattr__(proxy, "_handle", handle)
    object.__setattr__(proxy, "_desc", desc)
    return proxy


# ------------------------------------------------------------------------------- serving rules


def _operate(name: str, target, args):
    """``target <name> args`` the way Python itself would do it (reflected operands included)."""
    import operator

    builtin = {"__len__": len, "__iter__": iter, "__next__": next, "__bool__": bool,
               "__str__": str, "__repr__": repr, "__format__": format, "__abs__": abs,
               "__int__": int, "__float__": float, "__round__": round, "__reversed__": reversed,
               "__contains__": lambda a, b: b in a}  # fmt: skip
    if name in builtin:
        return builtin[name](target, *args)
    if name in ("__getitem__", "__setitem__", "__delitem__", "__index__", "__neg__", "__pos__",
                "__invert__"):  # fmt: skip
        return getattr(operator, name.strip("_"))(target, *args)
    # Binary operators: this side's own slot only, NotImplemented included, so that Python on
    # the caller's side tries the reflected operand there (never a ping-pong between the two).
    slot = getattr(type(target), name, None)
    return NotImplemented if slot is None else slot(target, *args)


def _public(name, op) -> bool:
    if not isinstance(name, str):
        return False
    if op == "method" and name in OPERATORS:
        return True
    return not name.startswith("_") or name in SAFE_DUNDERS


def _is_plain_mapping(value) -> bool:
    import collections

    return type(value) in (collections.OrderedDict, collections.defaultdict)


def _clean_desc(desc: dict) -> dict:
    name = str(desc.get("name", "object"))[:100]
    if not name.isidentifier():
        name = "object"
    bases = (
        [str(b)[:300] for b in desc.get("bases", [])][:30]
        if isinstance(desc.get("bases"), list)
        else []
    )
    kind = desc.get("kind") if desc.get("kind") in ("class", "function", "object") else "object"
    own = desc.get("own") if isinstance(desc.get("own"), list) else []
    return {"name": name, "path": str(desc.get("path", ""))[:300], "bases": bases, "kind": kind,
            "own": [str(x)[:300] for x in own][:30]}  # fmt: skip


def _torch_function(name: str, trusted: bool):
    import torch

    if name.startswith("Tensor."):
        attr = name[len("Tensor.") :]
        if trusted and not _public(attr, "method"):
            raise RemoteError(f"torch.Tensor.{attr} is not available to your code here")
        return getattr(torch.Tensor, attr)
    module, _, attr = name.partition(":")
    if module not in TORCH_MODULES:  # never torch.nn.modules' global hooks and the like
        module = "torch"
    if trusted and (attr.startswith("_") or attr in TORCH_DENIED or attr.startswith("set_")):
        raise RemoteError(f"{module}.{attr} is not available to your code here")
    if trusted and ("hook" in attr or "register" in attr):
        raise RemoteError(f"{module}.{attr} is not available to your code here")
    func = getattr(sys.modules.get(module, torch), attr, None) or getattr(torch, attr, None)
    if func is None or not callable(func) or isinstance(func, type) and trusted:
        raise RemoteError(f"{module}.{attr} is not available to your code here")
    return func
