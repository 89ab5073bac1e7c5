"""The data-only channel between the judge and the sandboxed worker (shared/grading/remote.py).

Both ends in one process (a thread serves one side) and real pipes between them: values
arrive as values, objects as proxies whose calls travel back; in-place changes and random
state follow the call; the judge refuses what learner code must not reach.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest
import torch

from shared.grading.remote import ChannelClosed, Link, Remote, RemoteError, Tampered


@pytest.fixture
def pair():
    """(judge, worker) links over two pipes; ``serve(side)`` answers on a thread."""
    down, up = os.pipe(), os.pipe()
    judge = Link(up[0], down[1], trusted=True)
    worker = Link(down[0], up[1], trusted=False)
    threads = []

    def serve(side):
        def loop():
            try:
                while (message := side.receive()).get("op") != "bye":
                    side.serve_one(message)
            except ChannelClosed:
                pass

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append((side, thread))

    yield judge, worker, serve
    # Write ends first: a serving thread then reads EOF and ends. Only then the read ends: a
    # thread still selecting on a closed descriptor could read from the next test's pipe, which
    # may get the same number, and steal its messages (a hang).
    for fd in (down[1], up[1]):
        os.close(fd)
    for _, thread in threads:
        thread.join(timeout=10)
    for fd in (down[0], up[0]):
        os.close(fd)


def lend(sender: Link, receiver: Link, obj):
    """What ``receiver`` gets when ``sender`` sends ``obj``."""
    return receiver.decode(sender.encode(obj))


def test_values_cross_as_values(pair):
    judge, worker, _ = pair
    values = [
        None, True, 3, -2.5, math.inf, "ñandú", b"\x00\x01", [1, (2, 3)], {1: "a", "b": [None]},
        {4, 5}, slice(1, None, 2), torch.float16, torch.Size([2, 3]), torch.device("cpu"),
    ]  # fmt: skip
    for value in values:
        assert lend(worker, judge, value) == value
    assert math.isnan(lend(worker, judge, math.nan))
    t = torch.randn(2, 3, dtype=torch.float64)
    got = lend(worker, judge, t)
    assert type(got) is torch.Tensor and torch.equal(got, t) and got.dtype == torch.float64
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    back = lend(worker, judge, masked)
    assert np.ma.is_masked(back) and back.mask.tolist() == [False, True]


def test_objects_are_proxies_and_calls_come_back_with_changed_inputs(pair):
    judge, worker, serve = pair

    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            x.add_(1)  # an in-place change of the input: the caller must see it
            return x * self.weight + torch.rand(1)

    proxy = lend(worker, judge, Counter())
    serve(worker)
    assert isinstance(proxy, Remote) and isinstance(proxy, torch.nn.Module)
    assert type(proxy).__name__ == "Counter" and proxy.weight.shape == (2,)
    x = torch.zeros(2)
    torch.manual_seed(0)
    out = proxy(x)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(x, torch.ones(2)) and torch.allclose(out, 1 + torch.rand(1))
    assert torch.equal(after, torch.rand(1))  # one random stream across the two sides
    with torch.no_grad():
        proxy.weight.mul_(3)
    torch.manual_seed(1)
    tripled = proxy(torch.zeros(2))  # the in-place change reached the worker's parameter
    torch.manual_seed(1)
    assert torch.allclose(tripled, 3 + torch.rand(1))
    judge.send({"op": "bye"})


def test_the_judge_refuses_private_names_hooks_and_files(pair):
    judge, worker, serve = pair
    model = torch.nn.Linear(2, 2)
    proxy = lend(judge, worker, model)
    serve(judge)
    assert proxy.out_features == 2
    for name in ("_forward_hooks", "__class__", "__dict__"):
        with pytest.raises((RemoteError, AttributeError)):
            worker.request("getattr", h=proxy._handle, name=name)
    with pytest.raises(RemoteError):
        worker.request("setattr", h=proxy._handle, name="weight", value=None)
    for func in ("torch:save", "torch:load", "torch.nn.modules.module:register_module_forward_hook",
                 "torch:manual_seed", "torch:set_default_dtype"):  # fmt: skip
        with pytest.raises(RemoteError):
            worker.request("torch", func=func, args=(), kwargs={})
    worker.send({"op": "bye"})


def test_garbage_on_the_channel_is_tampering_not_an_answer(pair):
    judge, worker, _ = pair
    os.write(worker.write_fd, b'{"status": "pass"}\n' * 4)
    with pytest.raises(Tampered):
        judge.receive()
