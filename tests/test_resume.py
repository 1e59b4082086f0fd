"""Resume and idempotence: killed runs finish only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import pytest
from distributed import Client, LocalCluster

import nudask
from nudask.dataset.manifest import MANIFEST
from nudask.resume import JOURNAL

SMALL = {"geometry": "small"}


def stamps(folder):
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}


def ids(ds):
    m = ds.metadata
    return sorted(zip(m.source_file, m.event_index))


def input_ids(paths):
    out = []
    for p in paths:
        with h5py.File(p) as f:
            out += [(p, k) for k in range(len(f["event_table/event_id"]))]
    return sorted(out)


def test_rerun_of_a_finished_dataset_writes_nothing(bnb_files, tmp_path, client, capsys):
    kw = dict(reader_options=SMALL, events_per_chunk=3)
    nudask.preprocess(bnb_files, tmp_path / "ds", progress=False, **kw)
    before = stamps(tmp_path / "ds")
    ds = nudask.preprocess(bnb_files, tmp_path / "ds", **kw)
    assert "nothing to do" in capsys.readouterr().out
    assert stamps(tmp_path / "ds") == before and len(ds) == 16


def test_resume_runs_only_missing_or_damaged_chunks(bnb_files, tmp_path, client):
    kw = dict(reader_options=SMALL, events_per_chunk=3, progress=False)
    out = tmp_path / "ds"
    ds = nudask.preprocess(bnb_files, out, **kw)
    parts = [os.path.basename(f) for f in ds.files]
    # what a kill leaves: no manifest, a lost part, a half-written temp file,
    # a damaged part and a torn last journal line
    os.remove(out / MANIFEST)
    os.remove(out / parts[0])
    (out / f".{parts[1]}.abcd.tmp").write_bytes(b"PAR1 half")
    with open(out / parts[2], "r+b") as f:
        f.seek(100)
        f.write(b"\0" * 50)
    with open(out / JOURNAL, "a") as f:
        f.write('{"chunk": {"path": ')
    kept = {n: t for n, t in stamps(out).items() if n in parts[3:]}
    ds = nudask.preprocess(bnb_files, out, **kw)
    assert ds.manifest.run["chunks"] == len(parts)
    assert {n: t for n, t in stamps(out).items() if n in parts[3:]} == kept  # untouched
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert ids(ds) == input_ids(bnb_files)
    assert ds.image(0)["y"].shape == (346, 214)


def _journal_lines(out):
    try:
        with open(os.path.join(out, JOURNAL)) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_driver_killed_mid_run_resumes(tmp_path):
    """SIGKILL the whole `nudask preprocess` process, then rerun the same command."""
    inputs = [
        str(
            nudask.simulate_microboone(
                tmp_path / f"bnb_WithWire_{k:02d}.h5", n_events=30, geometry="small", seed=k, subrun=k
            )
        )
        for k in (0, 1)
    ]
    out = str(tmp_path / "ds")
    cmd = [
        sys.executable,
        "-m",
        "nudask",
        "preprocess",
        *inputs,
        "--out",
        out,
        "-O",
        "geometry=small",
        "--events-per-chunk",
        "1",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _journal_lines(out) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local workers
    proc.wait()
    finished = _journal_lines(out)
    assert 5 <= finished < 60 and not os.path.exists(os.path.join(out, MANIFEST))
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {finished}" in rerun.stdout or "resuming:" in rerun.stdout
    ds = nudask.open_dataset(out)
    assert ids(ds) == input_ids(inputs)
    assert ds.manifest.run["chunks"] == 60


@pytest.mark.slow
def test_local_worker_killed_mid_run_loses_no_event(tmp_path):
    inputs = [
        str(
            nudask.simulate_microboone(
                tmp_path / f"bnb_WithWire_{k:02d}.h5", n_events=30, geometry="small", seed=k, subrun=k
            )
        )
        for k in (0, 1)
    ]
    out = str(tmp_path / "ds")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        result = {}
        run = threading.Thread(
            target=lambda: result.update(
                ds=nudask.preprocess(
                    inputs, out, reader_options=SMALL, events_per_chunk=1, progress=False, client=client
                )
            )
        )
        run.start()
        deadline = time.time() + 60
        while _journal_lines(out) < 3 and time.time() < deadline:
            time.sleep(0.02)
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)
        run.join(timeout=300)
    ds = result["ds"]
    assert ids(ds) == input_ids(inputs)
    assert ds.manifest.failed == []
    assert len(ds.files) == 60
