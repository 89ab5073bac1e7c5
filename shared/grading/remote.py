"""Objects of one process used from another, over a pipe that carries data and nothing else.

The grader's judge runs the real check in its own process against a ``Remote`` proxy of the
learner's definition; the learner's code runs in a sandboxed process (``shared.grading.checker``).
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
module it names. The proxies and those serving rules are ``shared.grading.remote_proxy``; the
values and the errors, ``shared.grading.remote_values``.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
import os
import select
import struct
import time

from shared.grading.remote_proxy import (
    OPERATORS,
    Remote,
    _clean_desc,
    _describe,
    _is_plain_mapping,
    _operate,
    _proxy,
    _public,
    _torch_function,
)
from shared.grading.remote_values import (
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
    _rng_encode,
    _rng_raw,
    _set_grad_mode,
    _set_rng_state,
    _write_back,
)

__all__ = ["ChannelClosed", "Deadline", "Link", "Remote", "RemoteError", "Tampered"]

MAX_MESSAGE_BYTES = 256 << 20


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
