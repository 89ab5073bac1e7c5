"""The thread count is chosen by timing real work (a fake clock here: no timing in tests)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from shared.engine import threads
from shared.engine.threads import ThreadTuner, candidate_counts, cpu_quota, usable_cores


class FakeMachine:
    """A clock where one step costs ``cost[threads]`` seconds at the current thread count."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.now, self.current, self.set_calls = cost, 0.0, None, []

    def timer(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.current = n
        self.set_calls.append(n)

    def work(self) -> None:
        self.now += self.cost[self.current]


def run_steps(tuner, machine, n: int) -> list[int]:
    used = []
    for _ in range(n):
        with tuner.step():
            machine.work()
        used.append(machine.current)
    return used


def make_tuner(machine, **kwargs) -> ThreadTuner:
    return ThreadTuner(timer=machine.timer, set_threads=machine.set_threads, **kwargs)


@pytest.mark.parametrize(
    ("cost", "best"),
    [({1: 0.10, 2: 0.06}, 2), ({1: 0.10, 2: 0.90}, 1), ({1: 0.4, 2: 0.3, 4: 0.2, 6: 0.25}, 4)],
)
def test_the_probe_keeps_the_fastest_count_and_its_steps_are_real_work(cost, best):
    machine = FakeMachine(cost)
    chosen = []
    tuner = make_tuner(machine, cores=max(cost), on_change=chosen.append)
    used = run_steps(tuner, machine, 30)
    assert tuner.choice.threads == best and [c.threads for c in chosen] == [best]
    assert used[-1] == best and set(used) == set(cost)  # every candidate ran real steps
    assert tuner.choice.seconds_per_step == pytest.approx(cost[best])
    assert f"{best}: {cost[best] * 1000:.0f} ms" in tuner.choice.why


def test_a_hopeless_candidate_is_abandoned_after_one_step():
    machine = FakeMachine({1: 0.05, 2: 5.0})  # another program holds one of the two cores
    tuner = make_tuner(machine, cores=2)
    used = run_steps(tuner, machine, 10)
    assert used.count(2) == 1 and tuner.choice.threads == 1


def test_slow_steps_keep_the_probe_short():
    machine = FakeMachine({1: 1.5, 2: 2.5})  # a very busy machine: seconds per step
    tuner = make_tuner(machine, cores=2)
    used = run_steps(tuner, machine, 6)
    assert used[:3] == [1, 1, 2] and not tuner.probing  # 3 steps, every one of them training
    assert used[3:] == [1, 1, 1]


def test_forced_count_is_used_without_probing():
    machine = FakeMachine({1: 0.01, 2: 0.5, 3: 1.0})
    tuner = make_tuner(machine, num_threads=3, cores=2)
    assert set(run_steps(tuner, machine, 10)) == {3}
    assert tuner.choice.why == "forced by num_threads" and not tuner.probing


def test_one_core_means_one_thread_without_probing():
    machine = FakeMachine({1: 0.1})
    tuner = make_tuner(machine, cores=1)
    assert set(run_steps(tuner, machine, 5)) == {1} and machine.set_calls == [1]


def test_a_sharp_slowdown_measures_again_and_switches():
    machine = FakeMachine({1: 0.10, 2: 0.06})
    chosen = []
    tuner = make_tuner(machine, cores=2, on_change=chosen.append)
    run_steps(tuner, machine, 10)
    assert tuner.choice.threads == 2
    machine.cost = {1: 0.12, 2: 1.0}  # someone else now computes on one core
    run_steps(tuner, machine, 60)  # 30 s of slow steps pass before a re-check is allowed
    assert [c.threads for c in chosen] == [2, 1] and "measured again" in chosen[-1].why
    run_steps(tuner, machine, 50)
    assert len(chosen) == 2  # steady again: no more probing


def test_a_recheck_skips_counts_that_were_hopeless_and_only_remeasures():
    machine = FakeMachine({1: 0.10, 2: 0.90})  # busy: 2 threads hopeless
    chosen = []
    tuner = make_tuner(machine, cores=2, on_change=chosen.append)
    run_steps(tuner, machine, 10)
    machine.cost = {1: 0.50, 2: 5.0}  # busier still
    used = run_steps(tuner, machine, 100)
    assert 2 not in used and len(chosen) == 2  # re-measured at 1 thread only
    assert chosen[-1].seconds_per_step == pytest.approx(0.5) and chosen[-1].threads == 1
    machine.cost = {1: 2.0, 2: 20.0}  # and busier: a later re-check still skips 2 threads
    used = run_steps(tuner, machine, 200)
    assert 2 not in used and len(chosen) == 3


def test_rechecks_that_change_nothing_come_less_and_less_often():
    # the worst case: the machine is calm whenever we measure and busy whenever we train
    machine = FakeMachine({1: 0.10, 2: 0.06})
    starts = []
    tuner = make_tuner(machine, cores=2, on_change=lambda c: starts.append(machine.now))
    for _ in range(3000):
        probing = tuner.probing
        with tuner.step():
            machine.now += machine.cost[machine.current] * (1 if probing else 5)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert tuner.choice.threads == 2 and len(gaps) >= 3
    assert gaps[0] >= 30 and all(b > 1.8 * a for a, b in zip(gaps, gaps[1:], strict=False))


def test_a_steady_run_is_never_measured_again():
    machine = FakeMachine({1: 0.5, 2: 0.3})
    chosen = []
    tuner = make_tuner(machine, cores=2, on_change=chosen.append)
    run_steps(tuner, machine, 300)
    assert len(chosen) == 1


def test_candidates_stay_few_on_big_machines():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(6) == [1, 2, 4, 6]
    assert candidate_counts(64) == [1, 2, 4, 8, 16, 32, 64]


def test_usable_cores_honours_the_affinity_mask(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cores(cpu_max=tmp_path / "missing") == 3


@pytest.mark.parametrize(("omp", "cores"), [("2", 2), ("16", 3), ("0", 3), ("x", 3), ("", 3)])
def test_omp_num_threads_caps_the_usable_cores(monkeypatch, tmp_path, omp, cores):
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cores(cpu_max=tmp_path / "missing") == cores


@pytest.mark.parametrize(
    ("text", "cores"), [("max 100000\n", 8), ("150000 100000\n", 1), ("300000 100000", 3),
                        ("50000 100000", 1), ("2000000 100000", 8), ("garbage", 8)],
)  # fmt: skip
def test_usable_cores_honours_a_cgroup_quota(monkeypatch, tmp_path, text, cores):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    quota = tmp_path / "cpu.max"
    quota.write_text(text, encoding="utf-8")
    assert usable_cores(cpu_max=quota) == cores


def test_usable_cores_reads_this_process_cgroup_first(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    (tmp_path / "cpu.max").write_text("max 100000", encoding="utf-8")
    monkeypatch.setattr(threads, "cgroup_cpu_max_paths", lambda: [tmp_path / "cpu.max"])
    assert usable_cores() == 4
    (tmp_path / "cpu.max").write_text("200000 100000", encoding="utf-8")
    assert usable_cores() == 2
    assert cpu_quota(tmp_path / "nothing") is None


def test_sampling_times_the_counts_honours_a_forced_one_and_restores_the_callers():
    import torch
    from _tiny import tiny_config, tiny_corpus

    from shared.generate import generate
    from shared.model import GPT

    corpus = tiny_corpus()
    model = GPT(replace(tiny_config().model, vocab_size=corpus.vocab_size)).eval()
    seen = []
    hook = model.lm_head.register_forward_pre_hook  # the cached and the plain path both end here
    hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        generate(model, corpus.tokenizer, "En un", 12, seed=0, num_threads=1)
        assert set(seen) == {1} and torch.get_num_threads() == 3
        seen.clear()
        generate(model, corpus.tokenizer, "En un", 40, seed=0)  # enough for 7 counts
        assert set(seen) == set(candidate_counts(usable_cores()))  # each count wrote characters
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("cost", "best"), [({1: 0.003, 2: 0.030}, 1), ({1: 0.010, 2: 0.006}, 2)])
def test_pick_threads_keeps_the_fastest_count_for_what_comes_next(cost, best):
    machine = FakeMachine(cost)
    choice = threads.pick_threads(
        machine.work, cores=2, timer=machine.timer, set_threads=machine.set_threads
    )
    assert choice.threads == best and machine.current == best  # set for the cells after it
    assert set(machine.set_calls) == {1, 2}  # both counts were timed
    times = {n: f"{n}: {cost[n] * 1000:.0f} ms" for n in cost}
    plural = "s" if best > 1 else ""
    assert (
        str(choice)
        == f"threads: {best} thread{plural} (fastest of {times[1]}, {times[2]} per step)"
    )


def test_pick_threads_is_short_on_a_busy_machine():
    machine = FakeMachine({1: 0.02, 2: 1.5})  # another program holds one of the two cores
    steps = []
    choice = threads.pick_threads(
        lambda: (steps.append(machine.current), machine.work()),
        cores=2,
        timer=machine.timer,
        set_threads=machine.set_threads,
    )
    assert choice.threads == 1 and steps.count(2) == 1  # the hopeless count ran once
    assert machine.now < 2.0  # a warm-up and 5 timed steps at 1 thread, 1 step at 2


@pytest.mark.parametrize(
    ("kwargs", "threads_set"), [({"num_threads": 3, "cores": 2}, 3), ({"cores": 1}, 1)]
)
def test_pick_threads_forced_or_one_core_sets_the_count_without_timing(kwargs, threads_set):
    machine = FakeMachine({1: 0.01, 2: 0.01, 3: 0.01})
    ran = []
    choice = threads.pick_threads(
        lambda: ran.append(1), timer=machine.timer, set_threads=machine.set_threads, **kwargs
    )
    assert not ran and machine.set_calls == [threads_set] and choice.threads == threads_set


def test_pick_threads_default_work_leaves_the_random_numbers_alone():
    import torch

    before = torch.get_num_threads()
    try:
        torch.manual_seed(7)
        expected = torch.rand(4)
        torch.manual_seed(7)
        choice = threads.pick_threads()  # real timing of a small GPT: its result is not asserted
        assert torch.equal(torch.rand(4), expected)
        assert torch.get_num_threads() == choice.threads
        assert choice.threads in candidate_counts(usable_cores())
    finally:
        torch.set_num_threads(before)
