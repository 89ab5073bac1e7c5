"""Objects of one process used from another, over a pipe that carries data and nothing else.

The grader's judge runs the real check in its own process against a ``Remote`` proxy of the
learner's definition; the learner's code runs in a sandboxed process (``shared.course.checker``).
Each side holds its own objects and sends the other:

- **values** for plain data: None, bools, numbers, strings, bytes, lists, tuples, dicts, sets,
  slices, dtypes, devices, sizes, numpy arrays, dataclasses and namespaces of data, random
  generators (their state), and tensors (dtype, shape, raw bytes) except the ones whose
  identity matters: parameters, and on the judge's side tensors that carry a gradient;
- **handles** for everything else (modules, functions, optimizers...): the receiver gets a
  ``Remote`` whose attribute reads, calls, operators and torch functions travel back as
  requests. So the checks' own instruments (a counting ``optimizer.step``, a hook, a recording
  model) stay in the judge, and the learner's objects stay in the sandbox.

Messages are length-prefixed JSON; nothing is ever unpickled or evaluated. Every message
carries the sender's global random state (torch, numpy, ``random``) and every request its grad
mode, so the two processes behave as one program with one set of random generators. Inputs a
call changed in place come back with the answer and are written into the caller's objects, so
a check still sees what the learner's code did to them.

The judge (``trusted=True``) serves the sandbox only what a learner's code may use: public
attributes and operators of the objects it lent, and torch functions by name (never
``torch.save``/``load`` and the like); it never sets attributes for it and never imports a
module it names.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import os
import select
import struct
import sys
import time
import types

from shared.course.remote_values import (
    TRUSTED_TOPS,
    ChannelClosed,
    Deadline,
    RemoteError,
    Tampered,
    _decode_exception,
    _decode_special,
    _encode_exception,
    _encode_special,
    _grad_mode,
    _mutable_values,
    _path,
    _resolve,
    _rng_encode,
    _rng_raw,
    _set_grad_mode,
    _set_rng_state,
    _write_back,
)

__all__ = ["ChannelClosed", "Deadline", "Link", "Remote", "RemoteError", "Tampered"]

MAX_MESSAGE_BYTES = 256 << 20
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


# ------------------------------------------------------------------------------- the link


class Link:
    """One end of the channel: this side's lent objects and the other side's proxies."""

    def __init__(self, read_fd: int, write_fd: int, *, trusted: bool, deadline: float = 0):
        self.read_fd, self.write_fd, self.trusted = read_fd, write_fd, trusted
        self.objects: dict[int, object] = {}  # handle -> object lent to the other side
        self.handles: dict[int, int] = {}  # id(object) -> handle
        self.proxies: dict[int, Remote] = {}  # the other side's handle -> our proxy
        self.next_id = 0
        self.deadline = deadline  # time.monotonic() limit for answers (0: none)
        self.buffer = b""
        self.rng_seen = None
        self.requests = 0

    # ---------------------------------------------------------------- encoding
    def encode(self, value, depth=0):
        if depth > 60:
            raise ValueError("data nested too deeply to send")
        if value is None or isinstance(value, (bool, str)):
            return value
        if type(value) is int:
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {"f": repr(value)}
        if isinstance(value, Remote) and value._link is self:
            return {"mine": value._handle}  # the receiver's own object, by its handle
        if type(value) in (list, tuple, set, frozenset):
            tag = {list: "L", tuple: "T", set: "S", frozenset: "S"}[type(value)]
            return {tag: [self.encode(v, depth + 1) for v in value]}
        if type(value) is dict or _is_plain_mapping(value):
            return {
                "D": [
                    [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()
                ]
            }
        if isinstance(value, (bytes, bytearray)) and type(value) in (bytes, bytearray):
            return {"B": base64.b64encode(bytes(value)).decode("ascii")}
        if type(value) is slice:
            return {
                "sl": [self.encode(v, depth + 1) for v in (value.start, value.stop, value.step)]
            }
        if value is Ellipsis:
            return {"el": 1}
        if value is NotImplemented:
            return {"ni": 1}
        encoded = _encode_special(self, value, depth)
        if encoded is not None:
            return encoded
        return self.lend(value)

    def lend(self, value):
        key = id(value)
        if key not in self.handles:
            self.next_id += 1
            self.handles[key] = self.next_id
            self.objects[self.next_id] = value
        return {"ref": self.handles[key], "desc": _describe(value)}

    def decode(self, data):
        if not isinstance(data, dict):
            if isinstance(data, list):
                raise Tampered("malformed message")
            return data
        if len(data) == 1:
            ((tag, body),) = data.items()
            if tag == "f":
                return float(body)
            if tag == "L":
                return [self.decode(v) for v in body]
            if tag == "T":
                return tuple(self.decode(v) for v in body)
            if tag == "S":
                return {self.decode(v) for v in body}
            if tag == "D":
                return {self.decode(k): self.decode(v) for k, v in body}
            if tag == "B":
                return base64.b64decode(body)
            if tag == "sl":
                return slice(*(self.decode(v) for v in body))
            if tag == "el":
                return Ellipsis
            if tag == "ni":
                return NotImplemented
            if tag == "mine":
                if body not in self.objects:
                    raise Tampered("unknown handle")
                return self.objects[body]
        if "ref" in data:
            handle = data["ref"]
            if not isinstance(handle, int) or not isinstance(data.get("desc"), dict):
                raise Tampered("malformed handle")
            if handle not in self.proxies:
                self.proxies[handle] = _proxy(self, handle, _clean_desc(data["desc"]))
            return self.proxies[handle]
        return _decode_special(self, data)

    # ---------------------------------------------------------------- messages
    def send(self, message: dict) -> None:
        message["rng"] = self._rng_out()
        raw = json.dumps(message, allow_nan=False).encode("utf-8")
        data = struct.pack(">Q", len(raw)) + raw
        while data:
            try:
                written = os.write(self.write_fd, data)
            except OSError as exc:
                raise ChannelClosed(f"the other side closed the channel ({exc})") from None
            data = data[written:]

    def receive(self) -> dict:
        header = self._read(8)
        (size,) = struct.unpack(">Q", header)
        if size > MAX_MESSAGE_BYTES:
            raise Tampered(f"a message of {size} bytes (more than the limit)")
        try:
            message = json.loads(self._read(size))
        except ValueError:
            raise Tampered("a message that is not JSON") from None
        if not isinstance(message, dict):
            raise Tampered("a message that is not an object")
        self._rng_in(message.pop("rng", None))
        return message

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            wait = None if not self.deadline else self.deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise Deadline()
            if not select.select([self.read_fd], [], [], wait)[0]:
                raise Deadline()
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def request(self, op: str, **fields):
        self.requests += 1
        number = self.requests
        args = fields.pop("args", None)
        originals = [*(args or ()), *fields.get("kwargs", {}).values()]
        message = {"op": op, "n": number, "grad": _grad_mode()}
        message.update({k: self.encode(v) for k, v in fields.items()})
        if args is not None:
            message["args"] = self.encode(tuple(args))
        self.send(message)
        while True:
            reply = self.receive()
            if "op" in reply:
                self.serve_one(reply)
                continue
            if reply.get("re") != number:
                raise Tampered("an answer out of order")
            if originals and "after" in reply:
                _write_back(originals, self.decode(reply["after"]))
            if "error" in reply:
                raise self._exception(reply["error"])
            return self.decode(reply.get("value"))

    def serve_one(self, message: dict) -> None:
        number = message.get("n")
        grad = message.get("grad")
        previous = _grad_mode() if grad is not None else None
        try:
            if grad is not None:
                _set_grad_mode(bool(grad))
            args = self.decode(message["args"]) if "args" in message else ()
            kwargs = self.decode(message.get("kwargs", {"D": []}))
            if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                raise Tampered("malformed arguments")
            value = self._apply(message, args, kwargs)
            reply = {"re": number, "value": self.encode(value)}
            if args or kwargs:
                reply["after"] = self.encode(_mutable_values([*args, *kwargs.values()]))
        except (ChannelClosed, Deadline):
            raise
        except BaseException as exc:  # the answer is the exception, for the caller to raise
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.trusted:
                raise
            reply = {"re": number, "error": _encode_exception(self, exc)}
        finally:
            if previous is not None:
                _set_grad_mode(previous)
        self.send(reply)

    def _apply(self, message: dict, args, kwargs):
        op = message.get("op")
        if op == "torch":
            return _torch_function(str(message.get("func", "")), self.trusted)(*args, **kwargs)
        target = self.decode({"mine": message.get("h")})
        name = self.decode(message.get("name"))
        if op in ("getattr", "setattr", "method") and self.trusted and not _public(name, op):
            raise RemoteError(f"`{name}` is not available to your code here")
        if op == "getattr":
            return getattr(target, name)
        if op == "call":
            return target(*args, **kwargs)
        if op == "method":
            if name in OPERATORS:
                return _operate(name, target, args)
            return getattr(target, name)(*args, **kwargs)
        if op == "setattr" and not self.trusted:
            return setattr(target, name, self.decode(message.get("value")))
        if op == "signature":
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                return None
            return [
                [p.name, int(p.kind), p.default is not p.empty]
                for p in signature.parameters.values()
            ]
        raise RemoteError(f"request {op!r} refused")

    def _exception(self, data) -> BaseException:
        if not isinstance(data, dict):
            return Tampered("malformed error")
        return _decode_exception(self, data)

    # ---------------------------------------------------------------- random state
    def _rng_out(self):
        raw = _rng_raw()
        if raw == self.rng_seen:  # unchanged since the other side last saw it: nothing to send
            return None
        self.rng_seen = raw
        return _rng_encode(raw)

    def _rng_in(self, state) -> None:
        if state is None:
            return
        try:
            _set_rng_state(state)
        except Exception:
            raise Tampered("a malformed random state") from None
        self.rng_seen = _rng_raw()


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
