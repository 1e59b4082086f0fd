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


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_with_exactly_the_unseen_batches(mb, tmp_path, uninterrupted):
    """SIGKILL a training process after a checkpoint within an epoch, then resume it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    sets = [
        "input.batch_size=8",
        "train.epochs=2",
        f"train.steps_per_epoch={STEPS}",
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
    assert state is not None and 0 < state["step"] < STEPS  # killed mid-epoch, after a checkpoint
    epoch, step = state["epoch"], state["step"]
    (run,) = tmp_path.glob("quick/*")
    name = f"epoch_{epoch + 1:04d}_step_{step:06d}.keras"
    assert state["checkpoint"] == name and sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        name,
        "state.json",
    ]
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
    final = json.loads((run / "checkpoints" / "state.json").read_text())
    assert (final["epoch"], final["step"], final["checkpoint"]) == (2, 0, "epoch_0002.keras")
