"""What training says: plain periodic lines in a log, the start line and the end summary."""

from __future__ import annotations

import io
import re
from dataclasses import replace

from _tiny import tiny_config, tiny_corpus

from shared.engine.progress import Progress, duration, interactive
from shared.engine.threads import ThreadChoice
from shared.engine.train_report import TrainReport
from shared.train import train


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_plain_lines_every_interval_not_redraws():
    log, clock = io.StringIO(), Clock()
    bar = Progress(240, "training", "s", stream=log, timer=clock, every=15)
    assert not interactive(log) and bar.bar is None
    for second in range(1, 61):
        clock.now = float(second)
        bar.update(second, step=second * 10, loss="2.345", **{"tokens/s": "6,830"})
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 4  # at 15, 30, 45, 60 s
    assert lines[0] == (
        "training: 15/240 s, step 150, loss 2.345, tokens/s 6,830, elapsed 15 s, ~3 min 45 s left"
    )
    assert lines[-1].startswith("training: 60/240 s, step 600,") and lines[-1].endswith(
        "~3 min 00 s left"
    )


def test_counts_progress_estimates_what_is_left_and_can_be_silent():
    log, clock = io.StringIO(), Clock()
    bar = Progress(1000, "sampling", "chars", stream=log, timer=clock, every=1)
    clock.now = 2.0
    bar.update(250)
    assert log.getvalue() == "sampling: 250/1000 chars, elapsed 2 s, ~6 s left\n"
    quiet = Progress(10, "x", stream=log, timer=clock, enabled=False, every=0)
    quiet.update(5)
    quiet.write("nothing")
    assert log.getvalue().count("\n") == 1


def test_duration_reads_like_a_person_would_say_it():
    assert [duration(s) for s in (0, 42.4, 60, 245)] == ["0 s", "42 s", "1 min 00 s", "4 min 05 s"]


class FakeTuner:
    def __init__(self, seconds_per_step):
        self.choice = ThreadChoice(1, "fastest of 1: 10 ms, 2: 90 ms per step", seconds_per_step)

    def predicted_steps(self, seconds_left):
        return int(seconds_left / self.choice.seconds_per_step)


def test_the_summary_says_steps_speed_loss_and_time():
    config = tiny_config(time_budget=100.0)
    report = TrainReport(config, 0, 0.0, enabled=False)
    report.start("cpu", None, FakeTuner(0.1))
    text = report.summary(step=900, elapsed=100.0, stopped="time_budget", val_loss=1.234)
    tokens_per_s = 900 * config.batch_size * config.model.block_size / 100
    assert text == (
        f"trained 900 steps (step 900) in 1 min 40 s: {tokens_per_s:,.0f} tokens/s, "
        "final val loss 1.234 nats/char; stopped by time_budget"
    )
    per_token = TrainReport(config, 0, 0.0, enabled=False, chars_per_token=2.0)
    assert "final val loss 1.234 nats/token = 0.890 bits/char" in per_token.summary(
        900, 100.0, "time_budget", 1.234
    )  # 1.234 / 2 characters per token / ln 2


def test_far_fewer_steps_than_the_probe_promised_is_explained():
    config = tiny_config(time_budget=100.0, max_iters=10_000)
    report = TrainReport(config, 0, 0.0, enabled=False)
    report.start("cpu", None, FakeTuner(0.1))
    report.update(step=8, loss=2.5, lr=1e-3, elapsed=1.0)
    report.chose(report.tuner.choice)  # 8 + 99 s / 0.1 s = 998 steps
    assert report.predicted == 998
    slow = report.summary(step=120, elapsed=100.0, stopped="time_budget", val_loss=2.3)
    assert "only 120 steps" in slow and "about 998" in slow
    assert "something else was using the CPU" in slow and "resume" in slow
    fine = report.summary(step=900, elapsed=100.0, stopped="time_budget", val_loss=1.6)
    assert "only" not in fine
    stopped_by_steps = report.summary(step=120, elapsed=10.0, stopped="max_iters", val_loss=2.3)
    assert "only" not in stopped_by_steps


def test_train_in_a_log_prints_the_start_line_and_the_summary(capsys):
    result = train(tiny_corpus(), tiny_config(max_iters=6, num_threads=1), progress=True)
    out = capsys.readouterr().out
    assert "\r" not in out  # pytest's captured stdout is no terminal: no tqdm redraws
    assert re.search(r"device: cpu, model: [\d,]+ parameters; threads: 1 thread \(forced", out)
    assert result.summary in out and result.summary.startswith("trained 6 steps (step 6)")
    assert f"final val loss {result.final_losses['val']:.3f} nats/char" in result.summary
    evals = [line for line in out.splitlines() if line.startswith("step ")]
    assert evals and all(" nats/char (" in line and "bits/char" in line for line in evals)
    assert result.threads == 1


def test_the_plain_progress_line_names_the_loss_unit():
    stream = io.StringIO()
    report = TrainReport(tiny_config(max_iters=100), 0, 0.0, chars_per_token=3.0)
    report.bar = Progress(100, "training", "it", stream=stream, every=0.0)
    report.update(step=5, loss=4.25, lr=1e-3, elapsed=1.0)
    assert "loss 4.250 nats/token" in stream.getvalue()


def test_the_start_line_and_the_choice_say_how_threads_were_picked(capsys):
    from shared.engine.threads import ThreadTuner

    clock, cost = Clock(), {1: 0.2, 2: 0.1}
    current = []
    tuner = ThreadTuner(cores=2, timer=clock, set_threads=current.append)
    config = tiny_config(time_budget=60.0, max_iters=10_000)
    report = TrainReport(config, 0, 0.0, enabled=True)
    tuner.on_change = report.chose
    report.start("cpu", torch_model(), tuner)
    for step in range(1, 9):
        with tuner.step():
            clock.now += cost[current[-1]]
        report.update(step, 2.0, 1e-3, clock.now)
    out = capsys.readouterr().out
    assert "device: cpu, model: " in out and "timing the first steps at 1, 2 threads" in out
    assert "threads: 2 threads (fastest of 1: 200 ms, 2: 100 ms per step)" in out
    assert report.predicted is not None and report.predicted > 500  # ~ (60 s - 0.8 s) / 0.1 s


def torch_model():
    import torch

    return torch.nn.Linear(3, 4)


def test_the_cpu_recipe_cut_short_by_a_slow_machine_says_why_and_how_long_it_needs():
    from shared.engine.train_config import TrainConfig

    config = TrainConfig()  # the CPU recipe, 240 s
    report = TrainReport(config, 0, 0.0, enabled=False)
    report.start("cpu", None, FakeTuner(0.4))
    report.update(step=8, loss=2.5, lr=1e-3, elapsed=3.2)
    report.chose(report.tuner.choice)  # steady 0.4 s per step: no "fewer than promised"
    text = report.summary(step=600, elapsed=240.0, stopped="time_budget", val_loss=1.9)
    assert "only" not in text and "note: 600 steps" in text and "rougher text" in text
    assert "--time-budget 600" in text  # 1,500 steps at 0.4 s
    assert "note" not in report.summary(1400, 240.0, "time_budget", 1.5)
    for short_by_choice in ("max_iters", "interrupted"):  # --max-iters 5, Ctrl-C: not slowness
        assert "note" not in report.summary(600, 240.0, short_by_choice, 1.9)
    short = TrainReport(replace(config, time_budget=60.0), 0, 0.0, enabled=False)
    assert "note" not in short.summary(300, 60.0, "time_budget", 2.1)  # 60 s: ~375 steps idle
    assert "slower or busy" in short.summary(100, 60.0, "time_budget", 2.6)
    small = TrainReport(tiny_config(time_budget=240.0), 0, 0.0, enabled=False)
    small.start("cpu", None, FakeTuner(0.4))
    assert "note" not in small.summary(600, 240.0, "time_budget", 1.9)  # not the recipe


def test_the_modern_recipes_idle_steps_depend_on_its_tokens(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    from shared.engine.train_config import modern_train_config

    config = modern_train_config()
    on = {
        vocab: replace(config, model=replace(config.model, vocab_size=vocab))
        for vocab in (92, 1024)
    }
    bpe = TrainReport(on[1024], 0, 0.0, enabled=False)
    chars = TrainReport(on[92], 0, 0.0, enabled=False)
    # 480 steps: 2/3 of a BPE run's 720 on an idle machine, but not 0.6 of a character run's 870
    assert "note" not in bpe.summary(480, 240.0, "time_budget", 1.4)
    assert "idle 2-core machine" in chars.summary(480, 240.0, "time_budget", 1.4)
    assert "note" not in chars.summary(700, 240.0, "time_budget", 1.4)
