"""One model trained by two workers on the local SLURM (deploy/sbatch/train-multinode.sbatch).

The job's ``srun`` starts two tasks of ``python -m nudask.train`` (through tests/rank_probe.py,
which records the rows each rank read and its final weights). TensorFlow's
MultiWorkerMirroredStrategy on CPU: one replica per worker. After training both workers hold
the same weights, there is one run folder (written by rank 0), and the ranks' shards of every
epoch are disjoint and together cover the training split (full global batches). A worker killed
mid-epoch ends the job within ``FAIL_WITHIN`` seconds with the task named, and ``--resume``
(another job of the template) finishes the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from slurm_fixture import REPO, slurm_session  # noqa: F401 - the `slurm` fixture
from test_train_data import QUICK_JOB, microboone_dataset

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
TEMPLATE = REPO / "deploy" / "sbatch" / "train-multinode.sbatch"
FAIL_WITHIN = 60  # seconds from a worker's death to the job's end (srun --kill-on-bad-exit)
HANG_TIMEOUT = 20  # train.worker_timeout of the hung-worker test, seconds
SETTINGS = ["input.batch_size=4", "input.workers=1", "model.dropout=0", "train.learning_rate_scaling=none"]


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


def submit(folder: Path, *args: str) -> str:
    """The job id of the template submitted as two tasks on the one node."""
    python = folder / "python"  # the probe in front of python -m nudask.train
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "rank_probe.py"}" "$@"\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "NUDASK_PYTHON": str(python),
        "NUDASK_PROBE_DIR": str(folder),
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    options = ["--parsable", "-N", "1", "-n", "2", "--ntasks-per-node=2", "-c", "1", "--mem=6G", "-t", "15"]
    r = subprocess.run(
        ["sbatch", *options, "-o", str(folder / "job-%j.out"), str(TEMPLATE), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return r.stdout.strip().split(";")[0]


def state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"JobState=(\S+)", out)
    return found.group(1) if found else "?"


def wait(job: str, limit: float = 600) -> str:
    deadline = time.monotonic() + limit
    while (s := state(job)) in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}:
        assert time.monotonic() < deadline, f"job {job} still {s} after {limit} s"
        time.sleep(0.25)
    return s


def log(folder: Path, job: str) -> str:
    return (folder / f"job-{job}.out").read_text()


def train_args(mb: str, runs: Path, *extra: str) -> list[str]:
    sets = [*SETTINGS, f"output.runs={runs}", *extra]
    return ["--config", QUICK_JOB, "--data", mb, "--no-evaluate", *(a for s in sets for a in ("--set", s))]


@pytest.mark.long  # make test-long (CI's own step): a two-task SLURM training
def test_two_workers_train_one_model(slurm, mb, tmp_path):
    runs = tmp_path / "runs"
    job = submit(tmp_path, *train_args(mb, runs, "train.epochs=2"))
    assert wait(job) == "COMPLETED", log(tmp_path, job)[-4000:]
    (run,) = (runs / "quick").iterdir()  # one run folder: rank 0's
    env = json.loads((run / "environment.json").read_text())["placement"]
    assert env["workers"] == 2 and env["replicas"] == 2 and env["strategy"] == "MultiWorkerMirroredStrategy"
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
    w0, w1 = (np.load(tmp_path / f"rank_{r}.npz") for r in (0, 1))
    assert len(w0.files) == len(w1.files) > 4
    for k in w0.files:
        np.testing.assert_array_equal(w0[k], w1[k])  # the all-reduced update is applied alike
    read = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)]
    split = json.loads((run / "dataset.json").read_text())["split"]["train"]["events"]
    global_batch = 4 * 2
    full = (split // global_batch) * global_batch  # events in full global batches
    for epoch in ("0", "1"):
        assert (
            sorted(read[0][epoch], key=int)
            == sorted(read[1][epoch], key=int)
            == [str(i) for i in range(split // global_batch)]
        )
        rows = [np.concatenate(list(read[r][epoch].values())) for r in (0, 1)]
        assert rows[0].size == rows[1].size == full // 2
        assert not set(rows[0].tolist()) & set(rows[1].tolist())  # disjoint
        assert len(set(rows[0].tolist()) | set(rows[1].tolist())) == full  # together, every one
    assert read[0]["0"] != read[0]["1"]  # a new order every epoch


def into_second_epoch(job: str, runs: Path, folder: Path) -> None:
    """Waits until the job has checkpointed an epoch and gone on into the next."""
    deadline = time.monotonic() + 300
    while not list(runs.glob("quick/*/checkpoints/state.json")):
        assert state(job) in {"PENDING", "CONFIGURING", "RUNNING"}, log(folder, job)[-4000:]
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.2)
    time.sleep(1.0)


@pytest.mark.long
def test_a_killed_worker_fails_the_job_and_resume_finishes_it(slurm, mb, tmp_path):
    runs = tmp_path / "runs"
    job = submit(tmp_path, *train_args(mb, runs, "train.epochs=40"))
    into_second_epoch(job, runs, tmp_path)
    os.kill(int((tmp_path / "rank_1.pid").read_text()), 9)
    killed = time.monotonic()
    assert wait(job, limit=FAIL_WITHIN + 30) == "FAILED"
    took = time.monotonic() - killed
    out = log(tmp_path, job)
    print(f"\nthe job failed {took:.1f} s after its worker rank 1 was killed")
    assert took < FAIL_WITHIN, f"the job took {took:.0f} s to fail\n{out[-3000:]}"
    assert re.search(r"task 1: Killed", out), out[-3000:]  # srun names the dead rank
    (run,) = (runs / "quick").iterdir()
    done = json.loads((run / "checkpoints" / "state.json").read_text())["epoch"]
    assert 1 <= done < 40
    job2 = submit(tmp_path, "--resume", str(run), "--set", f"train.epochs={done + 1}", "--no-evaluate")
    assert wait(job2) == "COMPLETED", log(tmp_path, job2)[-4000:]
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, done + 2))
    assert list((runs / "quick").iterdir()) == [run]


@pytest.mark.long
def test_a_hung_worker_fails_the_job_and_one_process_resumes_the_run(slurm, mb, tmp_path):
    """A worker frozen (SIGSTOP: alive, silent) mid-epoch: the other's collective gives up after
    train.worker_timeout and the job fails naming the silent rank; the run then resumes in one
    plain process (another number of ranks), which keeps the run's global batch."""
    runs = tmp_path / "runs"
    job = submit(tmp_path, *train_args(mb, runs, "train.epochs=40", f"train.worker_timeout={HANG_TIMEOUT}"))
    into_second_epoch(job, runs, tmp_path)
    pid = int((tmp_path / "rank_1.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        assert wait(job, limit=HANG_TIMEOUT + FAIL_WITHIN + 60) == "FAILED"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    took = time.monotonic() - stopped
    out = log(tmp_path, job)
    print(
        f"\nthe job failed {took:.1f} s after its worker rank 1 froze (train.worker_timeout {HANG_TIMEOUT})"
    )
    assert took < HANG_TIMEOUT + FAIL_WITHIN, f"the job took {took:.0f} s to fail\n{out[-3000:]}"
    assert "worker rank 0 of 2: worker rank 1 stopped answering" in out, out[-3000:]
    (run,) = (runs / "quick").iterdir()
    done = json.loads((run / "checkpoints" / "state.json").read_text())["epoch"]
    assert 1 <= done < 40

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    sets = ["train.cluster=none", f"train.epochs={done + 1}"]
    args = [sys.executable, "-m", "nudask.train", "--resume", str(run), "--no-evaluate"]
    r = subprocess.run(
        [*args, *(a for s in sets for a in ("--set", s))],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    placement = json.loads((run / "environment.json").read_text())["placement"]
    assert (placement["workers"], placement["replicas"], placement["global_batch"]) == (1, 1, 8)
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == list(range(1, done + 2))
