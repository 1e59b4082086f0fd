"""A study on the local SLURM: two worker jobs train trials, the driver is killed, the rerun resumes.

The driver is a real ``python -m nudask.tune --cluster local-slurm --jobs 2`` process; it is
SIGKILLed once a trial has finished (others running), so its scheduler dies with it and its
worker jobs are left to end on their own (death timeout). The same command then resumes the
study: finished trials are kept as they are, the killed ones run again, and no job is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_fixture import REPO, slurm_session, squeue  # noqa: F401 - the `slurm` fixture

import nudask
from nudask.simulate.dune_sn import simulate_dune_sn

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.long]
TRIALS = 4
JOB_NAME = f"nudask-tunetest-{os.getpid()}"


@pytest.fixture(scope="module")
def sn(tmp_path_factory, client):
    raw = tmp_path_factory.mktemp("sn_raw")
    files = simulate_dune_sn(raw, files=3, events=60, seed=5, generation=12, width=16)
    return nudask.preprocess(files, tmp_path_factory.mktemp("sn") / "ds", client=client, progress=False)


def study_trials(url: str):
    """The study's trials (empty until the driver has created it)."""
    import sqlite3

    import optuna
    import sqlalchemy.exc

    path = url.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return []
    try:  # read-only first: loading the study before the driver made its tables would make them too
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
            if "alembic_version" not in tables or not db.execute("select * from alembic_version").fetchall():
                return []
        return optuna.load_study(study_name="study", storage=url).get_trials(deepcopy=False)
    except (KeyError, sqlite3.OperationalError, sqlalchemy.exc.OperationalError):
        return []


def our_jobs() -> list[list[str]]:
    return [row for row in squeue("%i", "%j", "%T") if row[1] == JOB_NAME]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_a_study_on_two_slurm_jobs_is_killed_and_resumes(slurm, sn, tmp_path):
    import optuna

    job = tmp_path / "tune.yaml"
    job.write_text(
        (REPO / "jobs/tune_dune_mt.yaml")
        .read_text()
        .replace("epochs: 4", "epochs: 1")
        .replace("trials: 8", f"trials: {TRIALS}")
        .replace("pruner: median", "pruner: none\n  heartbeat: 1")
    )
    study = tmp_path / "study"
    url = f"sqlite:///{study / 'study.db'}"
    command = [
        sys.executable, "-m", "nudask.tune", "--config", str(job), "--data", sn.path, "--study", str(study),
        "--cluster", "local-slurm", "--jobs", "2", "--cluster-option", f"job_name={JOB_NAME}",
        "--cluster-option", f"log_directory={tmp_path / 'logs'}", "--cluster-option", "death_timeout=10",
        "--cluster-option", "walltime=00:10:00",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    first = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=first, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    try:
        while True:  # kill once a trial has finished, while others still run
            states = [t.state for t in study_trials(url)]
            if optuna.trial.TrialState.COMPLETE in states:
                break
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    before = study_trials(url)
    complete = [t for t in before if t.state == optuna.trial.TrialState.COMPLETE]
    killed = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert 1 <= len(complete) < TRIALS and killed, [(t.number, t.state.name) for t in before]
    kept = {t.number: snapshot(Path(t.user_attrs["run"])) for t in complete}

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = second.stdout + second.stderr
    (tmp_path / "second.log").write_text(log)
    assert second.returncode == 0, log[-3000:]

    after = optuna.load_study(study_name="study", storage=url).get_trials(deepcopy=False)
    done = [t for t in after if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == TRIALS, [(t.number, t.state.name) for t in after]
    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    assert all(t.state in ended for t in after), [(t.number, t.state.name) for t in after]
    # the finished trials were not run again: same trials, their run folders untouched
    for t in complete:
        assert after[t.number].state == optuna.trial.TrialState.COMPLETE
        assert snapshot(Path(after[t.number].user_attrs["run"])) == kept[t.number]
    # each killed trial failed and was asked again once, with its parameters (the retry is a
    # trial like any other: should it fail in turn, the study still ends with TRIALS complete)
    for t in killed:
        assert after[t.number].state == optuna.trial.TrialState.FAIL
        again = [a for a in after if a.system_attrs.get("failed_trial") == t.number]
        assert len(again) == 1 and again[0].params == t.params, log[-3000:]
    # trials really trained, as Dask tasks on both SLURM worker jobs
    where = {t.user_attrs["where"] for t in done}
    assert all(w.startswith("slurm job ") for w in where), where
    assert len(where) >= 2, where
    for t in done:
        assert (Path(t.user_attrs["run"]) / "history.json").exists()
    # the summary names the best trial
    best = min(done, key=lambda t: t.value)
    page = (study / "index.html").read_text()
    assert f"<b>Best trial {best.number}</b>" in page
    assert f"nudask.tune: best trial {best.number}:" in second.stdout
    # no job left behind: the killed driver's jobs ended on their own, the rerun's were cancelled
    for _ in range(50):
        if not our_jobs():
            break
        time.sleep(0.2)
    assert our_jobs() == []
