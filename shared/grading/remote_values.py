"""The values that cross the judge/worker channel (``shared.grading.remote``), and its errors.

Tensors (dtype, shape, raw bytes), arrays, masked arrays, generators, dataclasses and
namespaces of data; the random state both sides share; exceptions as a name, a builtin base
and a message; the inputs a call changed, written back into the caller's objects. Nothing
here unpickles or evaluates what it receives, and a class named by the other side is only
looked up among modules this side has already imported.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import sys
import types

TRUSTED_TOPS = {"builtins", "torch", "numpy", "collections", "types", "shared", "matplotlib"}
_EXCEPTIONS: dict = {}


class ChannelClosed(BaseException):
    """The other side went away or broke the protocol (never caught by a check)."""


class Tampered(ChannelClosed):
    """The other side sent something that is not a well-formed answer."""


class Deadline(BaseException):
    """The other side did not answer in time (never caught by a check)."""


class RemoteError(Exception):
    """A request the other side refused (a private attribute, a forbidden function)."""


def _resolve(path: str):
    """A trusted, already imported class or function from 'module:qualname', else None."""
    module, _, qualname = path.partition(":")
    if module.split(".")[0] not in TRUSTED_TOPS or module not in sys.modules:
        return None
    value = sys.modules[module]
    for part in qualname.split("."):
        value = getattr(value, part, None)
        if value is None or part.startswith("<"):
            return None
    return value


def _path(cls) -> str:
    return f"{getattr(cls, '__module__', '')}:{getattr(cls, '__qualname__', '')}"


def _grad_mode():
    torch = sys.modules.get("torch")  # a side without torch has no tensors to track
    return None if torch is None else torch.is_grad_enabled()


def _set_grad_mode(enabled: bool) -> None:
    import torch

    torch.set_grad_enabled(enabled)


def _encode_special(link, value, depth):
    if "torch" not in sys.modules:  # nothing here can be a tensor, an array or a dataclass
        return _encode_plain_object(link, value, depth)
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        if isinstance(value, torch.nn.Parameter) or (link.trusted and value.requires_grad):
            return None  # identity matters: lent by handle
        if value.grad_fn is not None:  # computed from the sender's weights: the values travel,
            # and the graph stays here under a handle, so a backward() there reaches them here
            return {**_tensor(value), "gh": link.lend(value)["ref"]}
        return _tensor(value)
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.Size):
        return {"size": list(value)}
    if isinstance(value, torch.Generator):
        return {"gen": _tensor(value.get_state()), "gdev": str(value.device)}
    if isinstance(value, np.ma.MaskedArray) and value.dtype.kind in "biufc":
        mask = np.ma.getmaskarray(value)
        return {"ma": link.encode(np.ma.getdata(value).copy(), depth + 1),
                "mask": link.encode(np.ascontiguousarray(mask), depth + 1)}  # fmt: skip
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        value = np.ascontiguousarray(value)
        return {"nd": base64.b64encode(value.tobytes()).decode(), "ndt": value.dtype.str,
                "shape": list(value.shape)}  # fmt: skip
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return {"ns": value.item() if value.dtype.kind != "f" else repr(float(value)),
                "ndt": value.dtype.str}  # fmt: skip
    return _encode_plain_object(link, value, depth)


def _encode_plain_object(link, value, depth):
    if type(value) is types.SimpleNamespace:
        return {"ns_": link.encode(vars(value), depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"dc": _path(type(value)), "fields": link.encode(fields, depth + 1)}
    return None


def _tensor(value) -> dict:
    import torch

    grad, computed = bool(value.requires_grad), value.grad_fn is not None
    value = value.detach().cpu().contiguous()
    raw = b"" if value.numel() == 0 else value.reshape(-1).view(torch.uint8).numpy().tobytes()
    return {"t": base64.b64encode(raw).decode("ascii"), "dtype": str(value.dtype)[6:],
            "shape": list(value.shape), "rg": grad, "gf": computed}  # fmt: skip


def _decode_tensor(data):
    import torch

    dtype = getattr(torch, str(data["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise Tampered("a tensor of unknown type")
    shape = [int(s) for s in data["shape"]]
    raw = base64.b64decode(data["t"])
    if not raw:
        out = torch.empty(shape, dtype=dtype)
    else:
        out = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
    if data.get("rg") and (out.is_floating_point() or out.is_complex()):
        out.requires_grad_(True)
        if data.get("gf"):  # computed, not a leaf: a copy that says so
            out = out.clone()
    return out


def _backward_to_owner(link, handle: int, tensor):
    """A copy of a tensor the other side computed, whose gradient in a backward() here is sent
    on to the original there (``tensor.backward(grad)`` on its side), so the other side's
    weights get their ``.grad`` as they would in one process (a check reads them there)."""
    leaf = tensor.detach().requires_grad_(True)

    def send_back(grad):
        link.request("method", h=handle, name="backward", args=(grad.detach(),), kwargs={})
        return grad

    leaf.register_hook(send_back)
    return leaf.clone()  # computed, not a leaf, like the original


def _decode_special(link, data):
    import numpy as np
    import torch

    if "t" in data:
        tensor = _decode_tensor(data)
        handle = data.get("gh")
        if link.trusted and type(handle) is int and tensor.grad_fn is not None:
            tensor = _backward_to_owner(link, handle, tensor)
        return tensor
    if "dtype" in data:
        dtype = getattr(torch, str(data["dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise Tampered("unknown dtype")
        return dtype
    if "device" in data:
        return torch.device(str(data["device"]))
    if "size" in data:
        return torch.Size([int(s) for s in data["size"]])
    if "gen" in data:
        generator = torch.Generator(device=str(data.get("gdev", "cpu")))
        generator.set_state(_decode_tensor(data["gen"]))
        return generator
    if "ma" in data:
        values, mask = link.decode(data["ma"]), link.decode(data["mask"])
        if not (isinstance(values, np.ndarray) and isinstance(mask, np.ndarray)):
            raise Tampered("a malformed masked array")
        return np.ma.array(values, mask=mask)
    if "nd" in data:
        array = np.frombuffer(base64.b64decode(data["nd"]), dtype=np.dtype(str(data["ndt"])))
        return array.reshape([int(s) for s in data["shape"]]).copy()
    if "ns" in data:
        dtype = np.dtype(str(data["ndt"]))
        return dtype.type(float(data["ns"]) if dtype.kind == "f" else data["ns"])
    if "ns_" in data:
        return types.SimpleNamespace(**{str(k): v for k, v in link.decode(data["ns_"]).items()})
    if "dc" in data:
        cls = _resolve(str(data["dc"])) if link.trusted else _import(str(data["dc"]))
        fields = link.decode(data["fields"])
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            return cls(**fields)
        return types.SimpleNamespace(**fields)
    raise Tampered("a value of unknown kind")


def _import(path: str):
    """Untrusted side only: the class a trusted dataclass value belongs to."""
    import importlib

    module, _, qualname = path.partition(":")
    if module.split(".")[0] not in TRUSTED_TOPS:
        return None
    try:
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value
    except Exception:
        return None


def _mutable_values(args):
    """What a call may have changed in place: its tensors, lists, dicts and arrays."""
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    kinds = (list, dict, bytearray) + ((torch.Tensor, torch.Generator) if torch else ())
    out = []
    for value in args:
        plain = type(value) in kinds or (np is not None and isinstance(value, np.ndarray))
        out.append(value if plain else None)
    return out


def _write_back(originals, after) -> None:
    """Write the values the other side saw after the call into the caller's own objects."""
    if "torch" not in sys.modules:
        return _write_back_plain(originals, after)
    import numpy as np
    import torch

    if not isinstance(after, list) or len(after) != len(originals):
        return
    for original, new in zip(originals, after, strict=True):
        if new is None or hasattr(type(original), "_handle"):  # a proxy: nothing to write
            continue
        try:
            if type(original) is torch.Tensor and isinstance(new, torch.Tensor):
                with torch.no_grad():
                    if original.shape == new.shape and original.dtype == new.dtype:
                        if not torch.equal(original.detach(), new):
                            original.copy_(new)
                    else:
                        original.data = new
            elif type(original) is list and isinstance(new, list):
                if not _same_list(original, new):
                    original[:] = new
            elif type(original) is dict and isinstance(new, dict):
                if original.keys() != new.keys() or not _same_list(
                    list(original.values()), list(new.values())
                ):
                    original.clear()
                    original.update(new)
            elif type(original) is torch.Generator and isinstance(new, torch.Generator):
                original.set_state(new.get_state())
            elif isinstance(original, np.ndarray) and isinstance(new, np.ndarray):
                if original.shape == new.shape:
                    original[...] = new
        except Exception:
            continue


def _write_back_plain(originals, after) -> None:
    if not isinstance(after, list) or len(after) != len(originals):
        return
    for original, new in zip(originals, after, strict=True):
        if type(original) is list and isinstance(new, list) and original != new:
            original[:] = new
        elif type(original) is dict and isinstance(new, dict) and original != new:
            original.clear()
            original.update(new)


def _same_list(a, b) -> bool:
    import torch

    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
                return False
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x.detach(), y.detach()):
                return False
        elif type(x) is not type(y):
            return False
        else:
            try:
                if x != y:
                    return False
            except Exception:
                return False
    return True


# ------------------------------------------------------------------------------- exceptions


def _encode_exception(link, exc: BaseException) -> dict:
    cls = type(exc)
    bases = [c.__name__ for c in cls.__mro__ if c.__module__ == "builtins"]
    try:
        args = link.encode(
            tuple(a if isinstance(a, (str, int, float)) else str(a) for a in exc.args)
        )
    except Exception:
        args = {"T": [str(exc)]}
    try:
        text = str(exc)
    except Exception:
        text = ""
    return {"name": cls.__name__, "module": cls.__module__, "bases": bases, "text": text,
            "args": args}  # fmt: skip


def _decode_exception(link, data: dict) -> BaseException:
    import builtins

    name = str(data.get("name", "Exception"))
    name = name if name.isidentifier() else "Exception"
    base = Exception
    for candidate in data.get("bases", []) if isinstance(data.get("bases"), list) else []:
        found = getattr(builtins, str(candidate), None)
        if isinstance(found, type) and issubclass(found, Exception):
            base = found
            break
    if not link.trusted and data.get("module") == RemoteError.__module__:
        base = RemoteError
    text = str(data.get("text", ""))
    key = (name, base, str(data.get("module", "")))
    if key not in _EXCEPTIONS:
        _EXCEPTIONS[key] = type(
            name, (base,), {"__module__": key[2], "__str__": lambda self: self._text}
        )
    cls = _EXCEPTIONS[key]
    try:
        args = link.decode(data.get("args", {"T": []}))
        exc = cls(*args) if isinstance(args, tuple) else cls(text)
    except Exception:  # e.g. UnicodeDecodeError wants 5 typed arguments: skip its __init__
        exc = cls.__new__(cls, text)
    exc._text = text
    return exc


# ------------------------------------------------------------------------------- random state


def _rng_raw():
    """torch's and numpy's generators (when this side has imported them) and ``random``'s,
    as cheap-to-compare bytes and tuples."""
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    torch_state = np_state = None
    if torch is not None:
        torch_state = torch.get_rng_state().numpy().tobytes()
    if np is not None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        np_state = (kind, keys.tobytes(), int(pos), int(has_gauss), float(gauss))
    return (torch_state, np_state, random.getstate())


def _rng_encode(raw):
    torch_state, np_state, py = raw
    if torch_state is not None:
        torch_state = base64.b64encode(torch_state).decode("ascii")
    if np_state is not None:
        kind, keys, pos, has_gauss, gauss = np_state
        np_state = [kind, base64.b64encode(keys).decode("ascii"), pos, has_gauss, repr(gauss)]
    return [torch_state, np_state, [py[0], list(py[1]), py[2]]]


def _set_rng_state(state) -> None:
    torch_state, np_state, py_state = state
    if torch_state is not None:
        import torch

        raw = bytearray(base64.b64decode(torch_state))
        torch.set_rng_state(torch.frombuffer(raw, dtype=torch.uint8).clone())
    if np_state is not None:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np_state
        keys = np.frombuffer(base64.b64decode(keys), dtype=np.uint32).copy()
        np.random.set_state((str(kind), keys, int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = py_state
    random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
