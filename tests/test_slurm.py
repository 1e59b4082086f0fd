"""Preprocessing on a real SLURM cluster: workers are SLURM jobs (deploy/slurm-up.sh).

The batch templates (deploy/sbatch) run first, while the node's two cores are
free. Then one SLURMCluster (profile ``local-slurm``, two one-core jobs) is
shared by the rest of the module; the tests run in file order, the
destructive ones last.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import dask
import h5py
import pyarrow.parquet as pq
import pytest
from distributed import Client
from slurm_fixture import DEPLOY, slurm_session, squeue  # noqa: F401 - the `slurm` fixture

import nudask
from nudask.cluster import slurm_cluster
from nudask.monitor import monitor_run, read_run_log, worker_identity

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SMALL = {"geometry": "small"}


def input_ids(paths):
    ids = []
    for p in map(str, paths):
        with h5py.File(p) as f:
            ids += [(p, k, *map(int, row)) for k, row in enumerate(f["event_table/event_id"][()])]
    return ids


def dataset_ids(ds):
    m = ds.metadata
    return list(zip(m.source_file, m.event_index, m.run, m.subrun, m.event))


def job_ids(cluster) -> set[str]:
    return {job.job_id for job in list(cluster.workers.values()) if job.job_id}


@pytest.fixture(scope="module")
def slurm_client(slurm, tmp_path_factory):
    """Client of a SLURMCluster keeping two worker jobs (replaced when one ends)."""
    tmp = tmp_path_factory.mktemp("slurm")
    # a lost job is replaced after this delay (default 15 s)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "2s"}):
        cluster = slurm_cluster(
            "local-slurm",
            jobs=2,
            local_directory=str(tmp / "local"),
            log_directory=str(tmp / "logs"),
            walltime="00:15:00",
        )
        try:
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=120)
                yield client
        finally:
            cluster.close()


@pytest.fixture(scope="module")
def many_chunks(tmp_path_factory, bnb_files):
    """bnb_files plus a 24-event file: 40 one-event chunks keep two workers busy a few seconds."""
    path = tmp_path_factory.mktemp("many") / "bnb_WithWire_07.h5"
    extra = nudask.simulate_microboone(
        path, n_events=24, seed=7, geometry="small", subrun=7, first_event=701, chunk_rows=200
    )
    return [*bnb_files, str(extra)]


def job_state(job: str) -> tuple[str, str]:
    """(JobState, ExitCode) of a job, from ``scontrol show job``."""
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    state = re.search(r"JobState=(\S+)", out)
    code = re.search(r"ExitCode=(\S+)", out)
    return (state.group(1) if state else "?", code.group(1) if code else "?")


def sbatch_wait(script: str, options: list[str], args: list[str], cwd, **env) -> str:
    """Submit ``deploy/sbatch/<script>``, wait for it, return its output; fail on a bad exit.

    Polls scontrol itself: ``sbatch --wait`` backs off to 30 s between its polls.
    """
    env = {**os.environ, "NUDASK_PYTHON": sys.executable, "NUDASK_DEPLOY": str(DEPLOY), **env}
    r = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-t",
            "10",
            "-o",
            "job-%j.out",
            *options,
            str(DEPLOY / "sbatch" / script),
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    job = r.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 300
    while (state := job_state(job))[0] in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}:
        assert time.monotonic() < deadline, f"job {job} still {state[0]} after 300 s"
        time.sleep(0.25)
    out = (cwd / f"job-{job}.out").read_text()
    assert state == ("COMPLETED", "0:0"), f"sbatch {script}: job {job} {state}\n{out[-4000:]}"
    return out


def test_preprocess_sbatch_on_one_node(slurm, bnb_files, tmp_path):
    out = sbatch_wait(
        "preprocess.sbatch",
        ["-c", "2", "--mem=3G"],
        [*bnb_files, "--out", "ds", "-O", "geometry=small"],
        tmp_path,
    )
    assert "nudask-preprocess: done" in out
    assert sorted(dataset_ids(nudask.open_dataset(tmp_path / "ds"))) == sorted(input_ids(bnb_files))


def test_preprocess_sbatch_as_driver_of_worker_jobs(slurm, bnb_files, tmp_path):
    out = sbatch_wait(
        "preprocess.sbatch",
        ["-c", "1", "--mem=1G"],
        [
            *bnb_files,
            "--out",
            "ds",
            "-O",
            "geometry=small",
            "--cluster-option",
            f"log_directory={tmp_path / 'logs'}",
        ],
        tmp_path,
        NUDASK_CLUSTER="local-slurm",
        NUDASK_JOBS="1",
    )
    assert "nudask-preprocess: done" in out
    ds = nudask.open_dataset(tmp_path / "ds")
    assert sorted(dataset_ids(ds)) == sorted(input_ids(bnb_files))
    assert len(list((tmp_path / "logs").glob("nudask-local-*.err"))) == 1  # one worker job ran


def test_runner_sbatch_scheduler_client_and_worker_in_one_allocation(slurm, bnb_files, tmp_path):
    # 3 tasks (scheduler, client, worker) overcommitted onto one core of the node
    out = sbatch_wait(
        "runner.sbatch",
        ["-N", "1", "-n", "3", "-O", "--mem-per-cpu=1G"],
        ["preprocess", *bnb_files, "--out", "ds", "-O", "geometry=small"],
        tmp_path,
    )
    assert "nudask-runner: 1 workers" in out and "nudask-runner: done" in out
    assert sorted(dataset_ids(nudask.open_dataset(tmp_path / "ds"))) == sorted(input_ids(bnb_files))
    assert not list(tmp_path.glob(".nudask-scheduler-*.json"))


def test_preprocess_over_tls_on_slurm(slurm, bnb_files, tmp_path, capsys):
    """local-slurm + TLS: worker jobs talk TLS with this run's temporary certificate."""
    with (
        slurm_cluster(
            "local-slurm",
            jobs=2,
            tls=True,
            shared_temp_directory=str(tmp_path),
            local_directory=str(tmp_path / "local"),
            log_directory=str(tmp_path / "logs"),
            walltime="00:10:00",
        ) as cluster,
        Client(cluster) as client,
    ):
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        client.wait_for_workers(2, timeout=120)
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(a.startswith("tls://") for a in workers), list(workers)
        idents = client.run(worker_identity)
        assert {i["slurm_job_id"] for i in idents.values()} == job_ids(cluster)  # really SLURM jobs

        # what the worker jobs listen on (worker comm, its HTTP pages, the nanny): loopback only
        def listening_hosts() -> set[str]:  # nested: pickled by value, the jobs cannot import this file
            import psutil

            conns = psutil.Process().net_connections(kind="inet")
            return {c.laddr.ip for c in conns if c.status == "LISTEN"}

        for nanny in (False, True):
            listening = client.run(listening_hosts, nanny=nanny)
            assert len(listening) == 2 and all(h == {"127.0.0.1"} for h in listening.values()), listening
        # the job script SLURM holds names the certificate files; the key itself is not in it
        folder = os.path.dirname(cluster.security.tls_worker_key)
        script = subprocess.run(
            ["scontrol", "write", "batch_script", sorted(job_ids(cluster))[0], "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert f"--tls-key {folder}/worker-key.pem" in script and "--protocol tls://" in script
        assert "PRIVATE KEY" not in script
        assert os.stat(folder).st_mode & 0o777 == 0o700
        ds = nudask.preprocess(
            bnb_files,
            tmp_path / "ds",
            client=client,
            reader_options=SMALL,
            events_per_chunk=2,
            progress=False,
        )
        assert sorted(dataset_ids(ds)) == sorted(input_ids(bnb_files))  # every event, once
        assert ds.manifest.events == 16 and ds.manifest.failed == []
        seen = read_run_log(tmp_path / "ds")["workers"]
        assert seen and all(a.startswith("tls://") for a in seen), list(seen)
        jobs = job_ids(cluster)
    assert not os.path.exists(folder)  # the run's certificates are gone with the cluster
    deadline = time.monotonic() + 60
    while jobs & {jid for (jid,) in squeue("%i")}:
        assert time.monotonic() < deadline, f"jobs left in squeue: {squeue('%i', '%j', '%T')}"
        time.sleep(0.5)
    assert "nudask: scheduler listens" not in capsys.readouterr().out  # all on loopback here


def test_workers_are_slurm_jobs(slurm_client):
    cluster = slurm_client.cluster
    idents = slurm_client.run(worker_identity)
    assert len(idents) == 2
    seen = {i["slurm_job_id"] for i in idents.values()}
    assert None not in seen and len(seen) == 2  # each worker in its own job
    assert seen == job_ids(cluster)
    running = {jid: (name, state) for jid, name, state in squeue("%i", "%j", "%T")}
    for jid in seen:
        assert running[jid] == ("nudask-local", "RUNNING"), running
    assert {i["pid"] for i in idents.values()}.isdisjoint({os.getpid()})
    # the dashboard of the SLURM cluster's scheduler: the real bokeh page, on loopback
    link = slurm_client.dashboard_link
    assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
    with urllib.request.urlopen(link, timeout=30) as r:
        assert r.status == 200 and "static/js/bokeh.min.js" in r.read().decode()
    # the profile's malloc settings reached the worker processes
    assert set(slurm_client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_").values()) == {"134217728"}


def test_slurm_dataset_equals_local_cluster_dataset(slurm_client, client, bnb_files, tmp_path):
    opts = dict(reader_options=SMALL, events_per_chunk=3, progress=False)
    on_slurm = nudask.preprocess(bnb_files, tmp_path / "slurm", client=slurm_client, **opts)
    local = nudask.preprocess(bnb_files, tmp_path / "local", client=client, **opts)
    assert [os.path.basename(f) for f in on_slurm.files] == [os.path.basename(f) for f in local.files]
    assert len(on_slurm.files) == 6
    for a, b in zip(on_slurm.files, local.files):
        ta, tb = pq.read_table(a), pq.read_table(b)
        assert ta.schema.names == tb.schema.names and ta.num_rows == tb.num_rows
        for name in ta.schema.names:  # COO columns and metadata (source_file included)
            assert ta.column(name).equals(tb.column(name)), name
        assert ta.equals(tb)  # everything but file-level metadata
    assert sorted(dataset_ids(on_slurm)) == sorted(input_ids(bnb_files))
    strip = ("created", "run")
    ma = {k: v for k, v in on_slurm.manifest.to_json().items() if k not in strip}
    mb = {k: v for k, v in local.manifest.to_json().items() if k not in strip}
    assert ma == mb
    workers = on_slurm.manifest.run["workers"]
    assert len(workers) == 2 and not set(workers) & set(local.manifest.run["workers"])


def test_scancel_a_worker_mid_run_every_event_once(slurm_client, many_chunks, tmp_path):
    cluster = slurm_client.cluster
    out = tmp_path / "ds"
    result: dict = {}

    def run():
        try:
            with monitor_run(slurm_client, (tmp_path / "mon").__fspath__(), report=False) as log:
                result["ds"] = nudask.preprocess(
                    many_chunks,
                    out,
                    client=slurm_client,
                    reader_options=SMALL,
                    events_per_chunk=1,
                    progress=False,
                )
                log.events = len(result["ds"])
        except BaseException as err:
            result["error"] = err

    (tmp_path / "mon").mkdir()
    before = job_ids(cluster)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not (out.exists() and any(p.name.startswith("part-") for p in out.iterdir())):
        assert thread.is_alive() and time.monotonic() < deadline, "no chunk finished"
        time.sleep(0.05)
    victim = sorted(before)[0]
    subprocess.run(["scancel", victim], check=True, timeout=30)
    t_cancel = time.time()
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    ds = result["ds"]
    late = [f for f in ds.files if os.path.getmtime(f) > t_cancel]
    assert len(late) >= 10, "the cancellation did not happen mid-run"
    ids = dataset_ids(ds)
    assert len(ids) == len(set(ids)) == 40  # every input event, exactly once
    assert sorted(ids) == sorted(input_ids(many_chunks))
    assert ds.manifest.failed == [] and ds.manifest.events == 40
    log = read_run_log(tmp_path / "mon")
    assert log["status"] == "completed" and log["events"] == 40
    jobs_seen = {w.get("slurm_job_id") for w in log["workers"].values()}
    assert victim in jobs_seen
    assert any(w["left_during_run"] for w in log["workers"].values() if w["slurm_job_id"] == victim)
    # the cancelled job is gone from the queue, and adapt() submits a replacement
    assert victim not in {jid for (jid,) in squeue("%i")}
    deadline = time.monotonic() + 90
    while len(job_ids(cluster) - {victim}) < 2:
        assert time.monotonic() < deadline, "no replacement job submitted"
        time.sleep(0.5)


def test_close_leaves_no_job(slurm_client):
    cluster = slurm_client.cluster
    ours = job_ids(cluster)
    assert ours
    cluster.close()
    deadline = time.monotonic() + 60
    while ours & {jid for (jid,) in squeue("%i")}:
        assert time.monotonic() < deadline, f"jobs left in squeue: {squeue('%i', '%j', '%T')}"
        time.sleep(0.5)
