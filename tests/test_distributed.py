"""Several processes, one model: DDP on CPU (gloo) with 2 ranks, as torchrun would start them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _tiny import TEXT, tiny_config, tiny_corpus

from shared.engine import distributed
from shared.engine.checkpoint import load_checkpoint
from shared.engine.errors import CourseError
from shared.engine.train_config import recipe_for_device
from shared.model import GPT
from shared.train import autocast_for, make_optimizer, train, train_step

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(worker, *args) -> None:
    """Run ``worker(rank, *args)`` in 2 processes joined like torchrun joins them.

    Once in a while on a loaded 2-core machine (CI), a gloo process died with SIGABRT ("terminate
    called without an active exception") and no Python error; a process that *dies* (not one
    whose assertions or code fail: those raise at once) gets one more try on a fresh port.
    """
    try:
        mp.spawn(worker, args=(free_port(), *args), nprocs=WORLD, join=True)
    except mp.ProcessExitedException as exc:
        print(f"retrying the 2-process run once: {exc}", file=sys.stderr)
        mp.spawn(worker, args=(free_port(), *args), nprocs=WORLD, join=True)


def join_as_torchrun_would(rank: int, port: int) -> distributed.Rank:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    return distributed.setup("cpu")


def fixed_batches(config, steps: int):
    """``steps`` batches of 2 x batch_size windows, the same in every process."""
    gen = torch.Generator().manual_seed(0)
    data = tiny_corpus().train_data
    n, t = 2 * config.batch_size, config.model.block_size
    for _ in range(steps):
        starts = torch.randint(len(data) - t, (n,), generator=gen)
        offsets = starts[:, None] + torch.arange(t)
        yield data[offsets], data[offsets + 1]


def model_and_optimizer(config):
    torch.manual_seed(config.seed)
    model = GPT(replace(config.model, vocab_size=tiny_corpus().vocab_size))
    return model, make_optimizer(model, config)


def worker(rank: int, port: int, tmp: Path) -> None:
    """What both ranks do: 3 DDP steps on halves of fixed batches, two stop agreements, then a
    whole ``train()`` run. (One spawn for all: starting 2 Python processes is the slow part.)"""
    me = join_as_torchrun_would(rank, port)
    config = tiny_config()
    model, optimizer = model_and_optimizer(config)
    ddp = distributed.wrap(model, me)
    for xb, yb in fixed_batches(config, steps=3):
        half = slice(rank * config.batch_size, (rank + 1) * config.batch_size)
        train_step(ddp, optimizer, xb[half], yb[half], config.grad_clip)
    # The stop: the most serious reason any rank has, and the slowest clock.
    mine = ("time_budget", 2.0) if rank == 1 else (None, 1.0)
    agreed = [distributed.agree(*mine, me), distributed.agree("diverged" if rank else None, 0, me)]
    torch.save({"state": model.state_dict(), "agreed": agreed}, tmp / f"step_rank{rank}.pt")
    (tmp / "run").mkdir(exist_ok=True)
    result = train(tiny_corpus(), tiny_config(max_iters=6), out=tmp / "run/gpt.pt", progress=False)
    torch.save(result.model.state_dict(), tmp / f"run/rank{rank}.pt")
    stops = {"time_budget": run_where_rank_1_alone(rank, "slow clock"),
             "diverged": run_where_rank_1_alone(rank, "nan loss")}  # fmt: skip
    (tmp / f"stops_rank{rank}.json").write_text(json.dumps(stops), encoding="utf-8")
    distributed.teardown(me)


def run_where_rank_1_alone(rank: int, trouble: str) -> dict:
    """A ``train()`` run in which only rank 1 has a reason to stop: its clock races 100 s per
    reading (over the 1000 s budget after a few steps), or its loss is NaN from step 3 on."""
    import shared.train as module

    real_clock, real_step, steps = module.time, module.train_step, []

    def clock() -> float:
        steps.append(0)
        return real_clock.perf_counter() + 100.0 * len(steps)

    def nan_step(*args) -> float:
        loss = real_step(*args)
        steps.append(0)
        return float("nan") if len(steps) >= 3 else loss

    if rank == 1 and trouble == "slow clock":
        module.time = types.SimpleNamespace(perf_counter=clock)
    if rank == 1 and trouble == "nan loss":
        module.train_step = nan_step
    try:
        config = tiny_config(max_iters=1000, time_budget=1000.0, eval_interval=1000)
        result = train(tiny_corpus(), config, progress=False)
        return {"stopped": result.stopped, "step": result.step}
    except CourseError as exc:
        return {"error": str(exc)}
    finally:
        module.time, module.train_step = real_clock, real_step


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    spawn(worker, tmp)
    return tmp


def test_a_ddp_step_equals_one_process_on_the_concatenated_batch(two_ranks):
    config = tiny_config()
    model, optimizer = model_and_optimizer(config)
    for xb, yb in fixed_batches(config, steps=3):
        train_step(model, optimizer, xb, yb, config.grad_clip)
    for rank in range(WORLD):
        saved = torch.load(two_ranks / f"step_rank{rank}.pt", weights_only=True)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(saved["state"][name], value, rtol=1e-4, atol=1e-5)
        assert saved["agreed"] == [("time_budget", 2.0), ("diverged", 0.0)]


def test_a_ddp_run_writes_one_checkpoint_from_its_own_batches(two_ranks):
    out = two_ranks / "run"
    assert sorted(p.name for p in out.iterdir()) == ["gpt.pt", "rank0.pt", "rank1.pt"]
    ckpt = load_checkpoint(out / "gpt.pt")
    assert ckpt.step == 6 and ckpt.history["step"] == [5, 6]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    alone = train(tiny_corpus(), tiny_config(max_iters=6), progress=False).model.state_dict()
    for name, value in ckpt.model.state_dict().items():
        assert torch.equal(ranks[0][name], value) and torch.equal(ranks[1][name], value)
    # Rank 1 drew batches of its own, so the averaged gradients differ from rank 0's alone.
    assert any(not torch.allclose(alone[k], v) for k, v in ckpt.model.state_dict().items())


def test_the_ranks_stop_together_when_any_one_of_them_must(two_ranks):
    stops = [json.loads((two_ranks / f"stops_rank{r}.json").read_text(encoding="utf-8"))
             for r in range(WORLD)]  # fmt: skip
    # Rank 1's clock ran out: both stop at the same step, by the budget, long before max_iters.
    assert stops[0]["time_budget"] == stops[1]["time_budget"]
    assert stops[0]["time_budget"]["stopped"] == "time_budget"
    assert stops[0]["time_budget"]["step"] < 20
    # Rank 1's loss went NaN at step 3: both stop there with the same error, no rank hangs.
    assert stops[0]["diverged"] == stops[1]["diverged"]
    assert "diverged at step 3" in stops[0]["diverged"]["error"]


def test_batch_streams_differ_by_rank_and_rank_0_keeps_the_plain_seed():
    assert distributed.batch_seed(7, 0) == 7
    seeds = {distributed.batch_seed(7, r, s) for r in range(4) for s in (0, 50)}
    assert len(seeds) == 8


def test_alone_everything_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    me = distributed.setup("cpu")
    model = torch.nn.Linear(2, 2)
    assert not me.enabled and me.is_main and distributed.wrap(model, me) is model
    assert distributed.agree("time_budget", 3.5, me) == ("time_budget", 3.5)
    flag = distributed.InterruptFlag(me).install()
    import signal

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C as usual
    flag.restore()


def fake_book(folder: Path) -> None:
    body = TEXT * (1_100_000 // len(TEXT.encode("utf-8")) + 1)
    book = f"*** START OF THE PROJECT GUTENBERG EBOOK DON QUIJOTE ***\n{body}*** END OF THE EBOOK ***\n"
    (folder / "pg2000.txt").write_text(book, encoding="utf-8")


def torchrun_train(flags: list) -> subprocess.CompletedProcess:
    """``python -m shared train FLAGS`` as two processes under torchrun, one thread each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "shared", "train", *map(str, flags)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240,
    )  # fmt: skip


def test_the_same_command_line_trains_on_two_processes_under_torchrun(tmp_path):
    fake_book(tmp_path)
    out = tmp_path / "gpt.pt"
    flags = ["--data-dir", tmp_path, "--out", out, "--device", "cpu", "--quiet",
             "--block-size", 16, "--batch-size", 4, "--n-layer", 1, "--n-head", 2,
             "--n-embd", 16, "--eval-iters", 2, "--max-iters", 4, "--time-budget", "none"]  # fmt: skip
    proc = torchrun_train(flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("world size 2") == 1, proc.stdout
    assert proc.stdout.count("saved ") == 1 and "step 4" in proc.stdout
    assert load_checkpoint(out).step == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt.pt", "pg2000.txt"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_recipe_trains_in_bf16_and_saves(tmp_path):
    config = tiny_config(device="cuda", max_iters=8)
    result = train(tiny_corpus(), config, out=tmp_path / "gpt.pt", progress=False)
    assert next(result.model.parameters()).is_cuda and result.step == 8
    assert load_checkpoint(tmp_path / "gpt.pt").step == 8


def test_the_gpu_recipe_is_chosen_on_cuda_unless_the_model_size_is_given(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    name, config = recipe_for_device("cuda", batch_size=32, compile=True)
    assert name == "gpu" and (config.model.n_layer, config.model.n_embd) == (6, 384)
    assert config.model.block_size == 256 and config.batch_size == 32 and config.compile
    name, config = recipe_for_device("cuda", n_layer=2)
    assert name == "cpu" and config.model.n_layer == 2 and config.model.n_embd == 128
    assert recipe_for_device("cpu")[0] == "cpu"
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")
    assert recipe_for_device("cuda")[1].model.n_layer == 2  # quick mode stays tiny everywhere


def test_autocast_is_bf16_on_cuda_only():
    assert isinstance(autocast_for("cpu"), contextlib.nullcontext)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        with autocast_for("cuda"):
            assert torch.ones(2, 2, device="cuda").mm(torch.ones(2, 2, device="cuda")).dtype == (
                torch.bfloat16
            )


def test_under_torchrun_ctrl_c_only_asks_every_rank_to_stop():
    import signal

    flag = distributed.InterruptFlag(distributed.Rank(world_size=2, enabled=True)).install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the ranks stop together
        os.kill(os.getpid(), signal.SIGINT)  # torchrun forwards the terminal's Ctrl-C again
        assert flag.requested
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_compile_flag_reaches_the_config():
    from shared.course.cli import build_parser

    assert build_parser().parse_args(["train", "--compile"]).compile is True
    assert build_parser().parse_args(["train"]).compile is None  # not given: the recipe decides
