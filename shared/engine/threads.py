"""How many CPU threads to compute with: measured on the machine as it is now, not assumed.

PyTorch starts one thread per core, and its threads wait for each other at every operation. On
a machine where another program keeps one core busy, every step then waits for that core: we
measured 10x fewer training steps with 2 threads than with 1 on a busy 2-core machine
(benchmarks/RESULTS.md). So instead of trusting the core count we time real work:

- ``usable_cores()``: the cores this process may use (its CPU affinity mask and a cgroup v2
  ``cpu.max`` quota, as in a container or a CI runner), not only ``os.cpu_count()``;
- ``ThreadTuner``: wraps each unit of repeated work (a training step, a sampled character). The
  first few units run at each candidate thread count (1, 2, 4, ... usable cores), the fastest
  count is kept, and when the work later gets much slower (someone else started computing) the
  counts are measured again. Every timed unit is real work: nothing is thrown away.

    tuner = ThreadTuner()
    for batch in batches:
        with tuner.step():
            train_step(model, optimizer, *batch)
    print(tuner.choice.why)

- ``pick_threads()``: the same measurement, done once on a short sample of work, for code that
  computes outside the course's functions (a lesson's own training loop): a lesson's setup cell
  calls it and every later cell runs at the fastest count.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")
ABANDON = 3.0  # a candidate whose step already took 3x the best one's cannot win: stop timing it
ENOUGH_S = 2.0  # a count timed for this long (one step at least) has been timed enough
SLOWDOWN = 2.0  # steps this many times slower than measured: measure the counts again
RECHECK_WINDOW = 10  # ... judged on the median of this many recent steps
RECHECK_EVERY_S = 30.0  # ... and at most this often (twice as rarely after each re-check that
# changed nothing: a machine whose load comes and goes would otherwise pay for a probe each time)


def cgroup_cpu_max_paths() -> list[Path]:
    """This process's own cgroup v2 ``cpu.max`` (from /proc/self/cgroup), then the root one."""
    paths = []
    try:
        for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
            if line.startswith("0::"):  # cgroup v2: "0::/path/of/my/group"
                paths.append(CGROUP_ROOT / line[3:].lstrip("/") / "cpu.max")
    except OSError:
        pass
    return [*paths, CGROUP_ROOT / "cpu.max"]


def cpu_quota(path: str | Path) -> float | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` file ("150000 100000" -> 1.5); None when the
    file is missing, unreadable or says "max" (no quota)."""
    try:
        quota, period = Path(path).read_text(encoding="utf-8").split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def usable_cores(cpu_max: str | Path | None = None) -> int:
    """The CPU cores this process may really use: the affinity mask (``taskset``, a scheduler)
    capped by the cgroup quota (``cpu.max``: a quota of 1.5 cores gives 1) and by
    ``OMP_NUM_THREADS`` when set (torchrun and a grader that runs several jobs set it). At least 1.

    ``cpu_max``: the quota file to read (default: this process's cgroup, then the root's).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        cores = os.cpu_count() or 1
    for path in [cpu_max] if cpu_max is not None else cgroup_cpu_max_paths():
        quota = cpu_quota(path)
        if quota is not None:
            cores = min(cores, max(1, math.floor(quota)))
            break
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return max(1, cores)


def candidate_counts(cores: int) -> list[int]:
    """1, 2, 4, ... and ``cores`` itself: a few counts, so the probe stays short on big machines."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return [*counts, cores]


@dataclass
class ThreadChoice:
    """The count in use and why (``why`` is a few words for the log)."""

    threads: int
    why: str
    seconds_per_step: float | None = None  # measured at ``threads``; None when not measured
    timings: dict[int, float] = field(default_factory=dict)  # count -> seconds per step

    def __str__(self) -> str:  # "threads: 1 thread (fastest of 1: 3 ms, 2: 30 ms per step)"
        plural = "s" if self.threads != 1 else ""
        return f"threads: {self.threads} thread{plural} ({self.why})"


def describe_timings(timings: dict[int, float]) -> str:
    return ", ".join(f"{n}: {s * 1000:.0f} ms" for n, s in sorted(timings.items()))


class ThreadTuner:
    """Picks the fastest thread count by timing the real work it wraps (see the module doc).

    ``num_threads`` forces a count (no probe). ``cores`` defaults to ``usable_cores()``.
    ``timer`` and ``set_threads`` are injectable (tests use a fake clock). ``on_change(choice)``
    is called whenever a count is chosen, first or again.
    """

    def __init__(
        self,
        num_threads: int | None = None,
        cores: int | None = None,
        warmup: int = 1,
        measure: int = 2,
        timer: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        on_change: Callable[[ThreadChoice], None] | None = None,
    ):
        self.timer, self.set_threads, self.on_change = timer, set_threads, on_change
        self.warmup, self.measure = warmup, measure
        self.cores = usable_cores() if cores is None else max(1, int(cores))
        self._applied: int | None = None
        self._recent: deque[float] = deque(maxlen=RECHECK_WINDOW)
        self._last_probe = timer()
        self._recheck_every = RECHECK_EVERY_S
        self._queue: list[int] = []
        self._hopeless: set[int] = set()
        if num_threads:
            self.choice = ThreadChoice(int(num_threads), "forced by num_threads")
        elif self.cores == 1:
            self.choice = ThreadChoice(1, "1 usable core")
        else:
            self.choice = None
            self._start_probe()

    @property
    def probing(self) -> bool:
        return self.choice is None or bool(self._queue)

    @property
    def threads(self) -> int:
        """The count the next step runs with."""
        return self._queue[0] if self._queue else self.choice.threads

    @contextmanager
    def step(self):
        """Run the wrapped work at the current count and time it."""
        self._apply(self.threads)
        start = self.timer()
        yield
        self._record(self.timer() - start)

    def _apply(self, n: int) -> None:
        if n != self._applied:
            self.set_threads(n)
            self._applied = n

    def _start_probe(self) -> None:
        self._queue = candidate_counts(self.cores)
        # a re-check (steps got slower): counts that were hopeless before (ABANDON x the best)
        # only get worse when the machine gets busier
        self._queue = [n for n in self._queue if n not in self._hopeless]
        self._warmup = self.warmup if self.choice is None else 0  # the run's very first steps
        self._samples: list[float] = []
        self._timings: dict[int, float] = {}
        self._last_probe = self.timer()

    def _record(self, seconds: float) -> None:
        if not self._queue:
            self._watch(seconds)
            return
        self._samples.append(seconds)
        measured = self._samples[self._warmup :]
        best = min(self._timings.values(), default=math.inf)
        enough = len(measured) >= self.measure or (measured and sum(self._samples) > ENOUGH_S)
        if enough or seconds > ABANDON * best:
            self._timings[self._queue.pop(0)] = statistics.median(measured or self._samples)
            self._samples, self._warmup = [], 0  # warm-up: only the first count's first steps
            if not self._queue:
                self._finish_probe()

    def _finish_probe(self) -> None:
        fastest = min(self._timings, key=self._timings.get)
        previous = self.choice
        what = "measured again, " if previous else ""
        why = f"{what}fastest of {describe_timings(self._timings)} per step"
        self.choice = ThreadChoice(fastest, why, self._timings[fastest], dict(self._timings))
        best = self._timings[fastest]
        self._hopeless |= {n for n, s in self._timings.items() if s > ABANDON * best}
        same = previous is not None and previous.threads == fastest
        self._recheck_every = 2 * self._recheck_every if same else RECHECK_EVERY_S
        self._recent.clear()
        if self.on_change:
            self.on_change(self.choice)

    def _watch(self, seconds: float) -> None:
        """After the probe: measure again when steps got much slower than when we chose."""
        reference = self.choice.seconds_per_step
        if reference is None:  # forced or one core: nothing to choose
            return
        self._recent.append(seconds)
        slow = len(self._recent) == RECHECK_WINDOW and (
            statistics.median(self._recent) > SLOWDOWN * reference
        )
        if slow and self.timer() - self._last_probe >= self._recheck_every:
            self._start_probe()

    def predicted_steps(self, seconds_left: float) -> int | None:
        """How many more steps fit in ``seconds_left`` at the measured speed (None: unmeasured)."""
        if self.choice is None or not self.choice.seconds_per_step:
            return None
        return int(seconds_left / self.choice.seconds_per_step)


class FixedThreads:
    """A ``ThreadTuner`` stand-in that changes nothing (GPU runs, several processes)."""

    choice = None
    probing = False

    @contextmanager
    def step(self):
        yield

    def predicted_steps(self, seconds_left: float) -> None:
        return None


def tuner_for(device: str, num_threads: int | None, world_size: int = 1, on_change=None):
    """The thread policy of one training process: measured on a single CPU process; under
    torchrun (``world_size`` > 1) torchrun's ``OMP_NUM_THREADS`` per process unless
    ``num_threads`` says otherwise; off the CPU, the count does not matter and stays as it is."""
    if device != "cpu":
        return FixedThreads()
    if world_size > 1:  # processes wait for each other every step: timing one alone misleads
        if num_threads:  # else torchrun's OMP_NUM_THREADS (1 unless the user set it)
            torch.set_num_threads(num_threads)
        return FixedThreads()
    return ThreadTuner(num_threads, on_change=on_change)


@contextmanager
def tuned_threads(num_threads: int | None = None):
    """A ``ThreadTuner`` for a block of repeated work (sampling, the GIF, a ladder rung); the
    caller's thread count is given back afterwards."""
    before = torch.get_num_threads()
    try:
        yield ThreadTuner(num_threads)
    finally:
        torch.set_num_threads(before)


def small_gpt_step() -> Callable[[], None]:
    """One step of work like a lesson's: forward and backward of a one-block GPT with 64
    channels on a batch of 32 x 32 characters (lesson 05's full block on the loss ladder)."""
    from shared.model import GPT, GPTConfig  # here: threads is imported before the model is

    model = GPT(GPTConfig(vocab_size=92, block_size=32, n_layer=1, n_head=4, n_embd=64))
    x, y = torch.randint(0, 92, (2, 32, 32))  # (B, T) inputs and targets, random characters

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x, y)[1].backward()

    return step


def pick_threads(
    work: Callable[[], object] | None = None,
    num_threads: int | None = None,
    *,
    measure: int = 5,
    cores: int | None = None,
    timer: Callable[[], float] = time.perf_counter,
    set_threads: Callable[[int], None] = torch.set_num_threads,
) -> ThreadChoice:
    """Time a short piece of work at each candidate thread count, keep the fastest for the rest
    of the program (``torch.set_num_threads``) and return the choice (print it to see why).

    ``work()`` is one step of the work to come (default: ``small_gpt_step()``); it runs a few
    times per count (``measure``, after one warm-up), a dozen small steps on two cores, well
    under a second on an idle laptop. The random number generator is left as it was, so seeded
    results do not depend on the probe. ``num_threads`` forces a count (no timing), as in
    ``ThreadTuner``, whose measurement this is.
    """
    tuner = ThreadTuner(
        num_threads, cores=cores, measure=measure, timer=timer, set_threads=set_threads
    )
    with torch.random.fork_rng(devices=[]):  # the probe's random numbers are not the caller's
        work = work or (small_gpt_step() if tuner.probing else None)
        while tuner.probing:
            with tuner.step():
                work()
    set_threads(tuner.choice.threads)  # the probe's last count may be another one
    return tuner.choice
