"""Several processes, one model: the plumbing ``train`` needs under ``torchrun``.

    torchrun --standalone --nproc_per_node 4 -m shared train      # 4 processes, one machine

``torchrun`` starts N copies of the same command and tells each, through environment variables
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), who it is. Each copy (a *rank*)
builds the same model, draws its own batches, and ``DistributedDataParallel`` averages the
gradients across ranks in ``backward()``, so every rank takes the same optimizer step: one
model trained on N times the batch. Rank 0 alone evaluates, prints and saves.

Ranks must also agree on *when to stop*: if one rank left the loop while another waited for its
gradients, the second would wait forever. So once per step the ranks combine, with one
``all_reduce``, a stop flag (time budget, Ctrl-C, a non-finite loss) and their elapsed time;
every rank then sees the same decision and the same clock (so the same learning rate).

Outside ``torchrun`` every function here is a no-op and ``train`` runs exactly as before.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from shared.engine.errors import CourseError

# Why a run stops early, in order of precedence when ranks disagree (the highest code wins).
STOP_REASONS = (None, "time_budget", "interrupted", "diverged")


@dataclass
class Rank:
    """Who this process is: ``rank`` of ``world_size``, on ``device`` (e.g. ``cuda:1``)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    enabled: bool = False  # in a process group (started by torchrun, even with 1 process)
    owns_group: bool = False  # we created the process group, so we destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """torchrun sets RANK and WORLD_SIZE for every process it starts (as nanoGPT checks)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: str) -> Rank:
    """Join the process group ``torchrun`` described (gloo on CPU, nccl on CUDA).

    ``device`` is the one the user asked for (``cpu``/``cuda``/``mps``); on CUDA each rank takes
    its own GPU, ``cuda:LOCAL_RANK``. Called twice (the CLI, then ``train``), the second call
    returns the same answer and leaves the group alone.
    """
    if not launched_by_torchrun() and not dist.is_initialized():
        return Rank(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    elif device == "mps":
        raise CourseError("torchrun with --device mps is not supported; use --device cpu")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Rank(dist.get_rank(), local_rank, dist.get_world_size(), device, True, owns)


def teardown(rank: Rank) -> None:
    """Leave the process group, if ``setup`` created it, once every rank is done with it: rank 0
    hosts the rendezvous store, so it must not leave while another rank may still use it."""
    if rank.owns_group and dist.is_initialized():
        barrier(rank)
        dist.destroy_process_group()


def batch_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of a rank's batch stream: rank 0 keeps the single-process seed, every other rank
    gets a stream of its own (re-derived from the step on resume: only rank 0's is saved)."""
    if rank == 0 and step == 0:
        return seed
    return (seed * 1_000_003 + rank * 7_919 + step) % 2**63


def wrap(model: torch.nn.Module, rank: Rank) -> torch.nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` (which copies rank 0's weights to every
    rank now, and averages gradients in every ``backward``); ``model`` itself when alone."""
    if not rank.enabled:
        return model
    device_ids = [rank.local_rank] if rank.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)


def agree(reason: str | None, elapsed: float, rank: Rank) -> tuple[str | None, float]:
    """The stop reason and elapsed seconds every rank agrees on: the most serious reason any rank
    has, and the slowest rank's clock. One small ``all_reduce`` per call; free when alone."""
    if not rank.enabled:
        return reason, elapsed
    both = torch.tensor([float(STOP_REASONS.index(reason)), elapsed], device=rank.device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    code, slowest = both.tolist()
    return STOP_REASONS[int(code)], slowest


def barrier(rank: Rank) -> None:
    """Wait until every rank gets here (nccl is told which GPU is this rank's)."""
    if rank.enabled:
        cuda = rank.device.startswith("cuda")
        dist.barrier(device_ids=[rank.local_rank] if cuda else None)


@contextmanager
def main_first(rank: Rank):
    """Rank 0 runs the block first (say, downloading the book), the others after it is done."""
    if not rank.is_main:
        barrier(rank)
    yield
    if rank.is_main:
        barrier(rank)


class InterruptFlag:
    """Under torchrun every rank receives Ctrl-C (SIGINT), from the terminal and again from
    torchrun, each at its own moment; a ``KeyboardInterrupt`` there could leave the others
    waiting in a collective. So between ``install()`` and ``restore()`` Ctrl-C only sets
    ``requested``, and the ranks stop together at the next ``agree`` (torchrun kills workers
    that take more than 30 s). Alone, Ctrl-C raises ``KeyboardInterrupt`` as usual."""

    def __init__(self, rank: Rank):
        self.requested = False
        self._active = rank.enabled and threading.current_thread() is threading.main_thread()
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def install(self) -> InterruptFlag:
        if self._active:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def restore(self) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            self._active = False


def prepare_model(model, rank: Rank, seed: int, step: int, batch_gen, compile: bool = False):
    """The module the loop steps: ``model`` compiled if asked, and wrapped for DDP under
    torchrun (every rank starts from rank 0's weights; ranks > 0 get their own random streams)."""
    if rank.rank > 0:
        seed = batch_seed(seed, rank.rank, step)
        batch_gen.manual_seed(seed)  # on resume: only rank 0's stream was saved
        torch.manual_seed(seed)  # dropout masks differ across ranks too
    compiled = torch.compile(model) if compile else model
    return wrap(compiled, rank)
