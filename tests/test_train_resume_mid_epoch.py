"""A run stopped mid-epoch resumes at the step after its checkpoint: the batches it had not trained,
in the order an uninterrupted run trains them (the sequence of dataset rows per step)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_train_data import QUICK_JOB, microboone_dataset, quick_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

import keras  # noqa: E402

from nudask.train.fit import resume, train  # noqa: E402
from nudask.train.run import read_trace  # noqa: E402
from nudask.train.stream import BatchSource  # noqa: E402

BATCH = BatchSource.batch

# batches of 8: 7 an epoch on the quick dataset's training split, capped at 6
STEPS = 6
SETTINGS = {
    "input": {"batch_size": 8},
    "train": {"epochs": 2, "steps_per_epoch": STEPS, "trace_batches": True},
    "report": {"event_displays": 0},
}


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def uninterrupted(mb, tmp_path_factory):
    """The steps (epoch, step, rows) of the run nobody stopped."""
    made = []

    def batch(src, i, **kw):
        if src.shuffle:
            made.append((src.epoch, i, tuple(src.batch_rows(i).tolist())))
        return BATCH(src, i, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchSource, "batch", batch)
        run = train(quick_config(mb, tmp_path_factory.mktemp("whole"), **SETTINGS), evaluate=False)
    trace = read_trace(run)
    assert [(t["epoch"], t["step"]) for t in trace] == [(e, s) for e in (0, 1) for s in range(STEPS)]
    assert trace[0]["rows"] != trace[STEPS]["rows"]
    # the batches made are the ones traced (Keras makes the first one twice, to see its shapes):
    # each capped epoch from its own first batch
    assert sorted(set(made)) == [(t["epoch"], t["step"], tuple(t["rows"])) for t in trace]
    return trace


def position(trace, epoch, step):
    return next(k for k, t in enumerate(trace) if (t["epoch"], t["step"]) == (epoch, step))


def kill_mid_epoch(args: list[str], runs, steps: int, env: dict | None = None) -> dict:
    """Runs ``args`` (a training into ``runs``) and SIGKILLs it once its state is a step within an
    epoch of ``steps``; that state (the last one written: the process was frozen to read it)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            found = list(runs.glob("quick/*/checkpoints/state.json"))
            if found and json.loads(found[0].read_text()).get("step", 0) > 0:
                os.kill(proc.pid, signal.SIGSTOP)  # frozen: the state read now is the last one
                state = json.loads(found[0].read_text())
                if state["step"] > 0:
                    break
                os.kill(proc.pid, signal.SIGCONT)  # went on to the epoch's end meanwhile
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert state is not None and 0 < state["step"] < steps  # killed mid-epoch, after a checkpoint
    return state


def train_args(data: str, runs, *settings: str) -> list[str]:
    """``python -m nudask.train`` of the quick job into ``runs``, with ``settings`` (key=value)."""
    args = [sys.executable, "-m", "nudask.train", "--config", QUICK_JOB, "--data", data, "--no-evaluate"]
    args += ["--set", f"output.runs={runs}", "--set", "report.event_displays=0"]
    return args + [a for s in settings for a in ("--set", s)]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_with_exactly_the_unseen_batches(mb, tmp_path, uninterrupted):
    """SIGKILL a training process after a checkpoint within an epoch, then resume it."""
    sets = [
        "input.batch_size=8",
        "train.epochs=2",
        f"train.steps_per_epoch={STEPS}",
        "train.checkpoint_every_steps=1",
        "train.trace_batches=true",
    ]
    state = kill_mid_epoch(train_args(mb, tmp_path, *sets), tmp_path, STEPS)
    epoch, step = state["epoch"], state["step"]
    (run,) = tmp_path.glob("quick/*")
    name = f"epoch_{epoch + 1:04d}_step_{step:06d}.keras"
    kept = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith(".tmp-"))
    assert state["checkpoint"] == name and kept == [name, "state.json"]  # and a save the kill cut, maybe
    saved = keras.models.load_model(run / "checkpoints" / name)
    assert int(saved.optimizer.iterations.numpy()) == epoch * STEPS + step  # the optimizer of that step
    killed = read_trace(run)
    cut = position(uninterrupted, epoch, step)
    assert killed == uninterrupted[: len(killed)] and len(killed) >= cut  # the same order until killed

    resume(run, evaluate=False)
    resumed = read_trace(run)
    assert resumed[:cut] == uninterrupted[:cut]  # what the checkpoint holds, kept
    assert resumed[cut:] == uninterrupted[cut:]  # then exactly the steps after it, in order
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
    assert not list((run / "checkpoints").glob(".tmp-*"))  # a cut save is cleared
    final = json.loads((run / "checkpoints" / "state.json").read_text())
    assert (final["epoch"], final["step"], final["checkpoint"]) == (2, 0, "epoch_0002.keras")


@pytest.mark.long
def test_a_run_killed_on_two_devices_resumes_on_one(mb, tmp_path):
    """Elastic: two replicas of 8 events (a global batch of 16 at the rate scaled x 2), killed
    mid-epoch and resumed on one device, train the same steps in the same order as the
    uninterrupted two-device run, to the same weights: the one device takes the whole 16."""
    from test_train_devices import RTOL, learning_rate, weights

    steps = 3
    sets = [
        "input.batch_size=8",
        "train.devices=2",
        "train.epochs=3",
        f"train.steps_per_epoch={steps}",
        "train.checkpoint_every_steps=1",
        "train.trace_batches=true",
        "split.validation=0",
        "model.dropout=0",  # its draws are per replica
        "input.workers=1",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(train_args(mb, tmp_path / "whole", *sets), capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (whole,) = (tmp_path / "whole").glob("quick/*")
    state = kill_mid_epoch(train_args(mb, tmp_path / "cut", *sets), tmp_path / "cut", steps)
    assert (state["global_batch"], state["learning_rate_replicas"]) == (16, 2)
    (run,) = (tmp_path / "cut").glob("quick/*")

    args = [sys.executable, "-m", "nudask.train", "--resume", str(run), "--no-evaluate"]
    out = subprocess.run([*args, "--set", "train.devices=1"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    placement = json.loads((run / "environment.json").read_text())["placement"]
    assert (placement["replicas"], placement["global_batch"], placement["learning_rate_replicas"]) == (
        1,
        16,
        2,
    )
    assert read_trace(run) == read_trace(whole) and len(read_trace(run)) == 3 * steps
    assert all(len(t["rows"]) == 16 for t in read_trace(run))
    assert learning_rate(run) == pytest.approx(0.004)  # the job's 0.002, scaled for the run's 2 replicas
    # the resumed epoch logs the mean of its steps after the resume; the later ones are whole
    later = slice(state["epoch"] + 1, None)
    h1, h2 = (json.loads((r / "history.json").read_text()) for r in (whole, run))
    assert [h["epoch"] for h in h2] == [1, 2, 3]
    np.testing.assert_allclose([h["loss"] for h in h2][later], [h["loss"] for h in h1][later], rtol=RTOL)
    w1, w2 = weights(whole), weights(run)
    assert sorted(w1) == sorted(w2)
    for name, a in w1.items():
        if name.startswith("layers/"):
            np.testing.assert_allclose(
                w2[name], a, rtol=RTOL, atol=RTOL * float(np.abs(a).max()), err_msg=name
            )
