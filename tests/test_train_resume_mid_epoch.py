"""A run stopped mid-epoch resumes at the step after its checkpoint: the batches it had not trained,
in the order an uninterrupted run trains them (the sequence of dataset rows per step)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_train_data import QUICK_JOB, microboone_dataset, quick_config

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

import keras  # noqa: E402

from nudask.train.fit import resume, train  # noqa: E402
from nudask.train.run import read_trace  # noqa: E402

# batches of 8: 7 steps an epoch on the quick dataset's training split
SETTINGS = {
    "input": {"batch_size": 8},
    "train": {"epochs": 2, "trace_batches": True},
    "report": {"event_displays": 0},
}


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def uninterrupted(mb, tmp_path_factory):
    """The steps (epoch, step, rows) of the run nobody stopped."""
    run = train(quick_config(mb, tmp_path_factory.mktemp("whole"), **SETTINGS), evaluate=False)
    trace = read_trace(run)
    steps = len(trace) // 2
    assert [(t["epoch"], t["step"]) for t in trace] == [(e, s) for e in (0, 1) for s in range(steps)]
    assert steps >= 5 and trace[0]["rows"] != trace[steps]["rows"]
    return trace


def position(trace, epoch, step):
    return next(k for k, t in enumerate(trace) if (t["epoch"], t["step"]) == (epoch, step))


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_with_exactly_the_unseen_batches(mb, tmp_path, uninterrupted):
    """SIGKILL a training process after a checkpoint within its first epoch, then resume it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    sets = [
        "input.batch_size=8",
        "train.epochs=2",
        "train.checkpoint_every_steps=1",
        "train.trace_batches=true",
    ]
    args = [sys.executable, "-m", "nudask.train", "--config", QUICK_JOB, "--data", mb, "--no-evaluate"]
    args += ["--set", f"output.runs={tmp_path}", "--set", "report.event_displays=0"]
    args += [a for s in sets for a in ("--set", s)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            found = list(tmp_path.glob("quick/*/checkpoints/state.json"))
            if found and json.loads(found[0].read_text()).get("step", 0) >= 2:
                os.kill(proc.pid, signal.SIGSTOP)  # frozen: the state read now is the last one
                state = json.loads(found[0].read_text())
                if state["epoch"] == 0 and state["step"] > 0:
                    break
                os.kill(proc.pid, signal.SIGCONT)  # went on to the epoch's end meanwhile
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert state is not None and state["epoch"] == 0 and 0 < state["step"] < len(uninterrupted) // 2
    (run,) = tmp_path.glob("quick/*")
    name = f"epoch_0001_step_{state['step']:06d}.keras"
    assert state["checkpoint"] == name and sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        name,
        "state.json",
    ]
    saved = keras.models.load_model(run / "checkpoints" / name)
    assert int(saved.optimizer.iterations.numpy()) == state["step"]  # the optimizer's state of that step
    killed = read_trace(run)
    cut = position(uninterrupted, 0, state["step"])
    assert killed == uninterrupted[: len(killed)] and len(killed) >= cut  # the same order until killed

    resume(run, evaluate=False)
    resumed = read_trace(run)
    assert resumed[:cut] == uninterrupted[:cut]  # what the checkpoint holds, kept
    assert resumed[cut:] == uninterrupted[cut:]  # then exactly the steps after it, in order
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
    final = json.loads((run / "checkpoints" / "state.json").read_text())
    assert (final["epoch"], final["step"], final["checkpoint"]) == (2, 0, "epoch_0002.keras")
