"""Cluster profiles, dry-run job scripts, config hygiene, dashboard and run monitoring."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import dask
import pytest
from distributed import Client

from nudask import cluster
from nudask.cluster import job_script, load_profiles, profile_options
from nudask.monitor import REPORT, RUN_LOG, monitor_run, read_run_log

REPO = Path(__file__).resolve().parents[1]
NAMED = {"slurm-cpu", "slurm-cpu-apptainer", "slurm-gpu", "local-slurm"}


def _minutes(text: str) -> float:
    """'04:00:00' / '1-00:00:00' (walltime) or '220m' / '30s' / '2h' (worker flags)."""
    if ":" in text:
        days, _, hms = text.rpartition("-")
        h, m, s = [*map(int, hms.split(":")), 0, 0][:3]
        return int(days or 0) * 1440 + h * 60 + m + s / 60
    value, unit = float(text[:-1]), text[-1]
    return value * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_packaged_profiles_and_deploy_copy_do_not_drift():
    packaged = (REPO / "nudask" / "jobqueue.yaml").read_bytes()
    assert (REPO / "deploy" / "jobqueue.yaml").read_bytes() == packaged, (
        "deploy/jobqueue.yaml and nudask/jobqueue.yaml differ: copy one onto the other"
    )


def test_profiles_are_complete_and_documented():
    profiles = load_profiles()
    assert NAMED <= set(profiles)
    text = (REPO / "deploy" / "jobqueue.yaml").read_text()
    for name in NAMED:
        assert re.search(rf"^  {name}:\n    #", text, re.M), f"profile {name} has no comment"
        p = profiles[name]
        assert p["cores"] >= 1 and p["processes"] >= 1
        assert re.fullmatch(r"\d+GiB", p["memory"]), p["memory"]
        assert "interface" in p and p["log-directory"]
        assert p["local-directory"].startswith("${TMPDIR"), "spill to node-local disk"
        args = p["worker-extra-args"]
        life, stagger = _minutes(_flag(args, "--lifetime")), _minutes(_flag(args, "--lifetime-stagger"))
        # a worker must leave on its own (handing back its chunks) before SLURM kills it
        assert life + stagger < _minutes(p["walltime"]), name
        assert dask.config.get(f"jobqueue.{name}.cores") == p["cores"]  # loaded into dask.config
        exports = f"export {' '.join(f'{k}={v}' for k, v in cluster.WORKER_MALLOC.items())}"
        assert exports in p["job-script-prologue"], name  # fast workers (see WORKER_MALLOC)
    assert profiles["local-slurm"]["interface"] == "lo"
    assert "apptainer exec --nv" in profiles["slurm-gpu"]["python"]
    assert "--gres=gpu:1" in profiles["slurm-gpu"]["job-extra-directives"]
    assert profiles["slurm-cpu-apptainer"]["python"].startswith("apptainer exec")


def test_overrides_keyword_env_and_file(tmp_path, monkeypatch):
    opts = profile_options("slurm-cpu", walltime="08:00:00", cores=2, **{"job-extra-directives": ["-C x"]})
    assert (opts["walltime"], opts["cores"], opts["job_extra_directives"]) == ("08:00:00", 2, ["-C x"])
    assert opts["memory"] == "16GiB" and opts["job_name"] == "nudask-cpu"
    assert opts["python"] == sys.executable  # null in the profile: this interpreter
    # the user's dask config (here: its environment variables) wins over the packaged file
    monkeypatch.setenv("DASK_JOBQUEUE__SLURM_CPU__QUEUE", "long")
    assert profile_options("slurm-cpu")["queue"] == "long"
    monkeypatch.delenv("DASK_JOBQUEUE__SLURM_CPU__QUEUE")
    # an edited copy of deploy/jobqueue.yaml, by argument or $NUDASK_JOBQUEUE
    mine = tmp_path / "jobqueue.yaml"
    mine.write_text(
        "jobqueue:\n  slurm-cpu:\n    cores: 16\n    memory: 64GiB\n  tiny:\n    cores: 1\n    memory: 1GiB\n"
    )
    assert profile_options("slurm-cpu", profiles=mine)["cores"] == 16
    monkeypatch.setenv("NUDASK_JOBQUEUE", str(mine))
    assert profile_options("tiny")["walltime"] == "00:30:00"  # dask-jobqueue's default fills gaps
    monkeypatch.delenv("NUDASK_JOBQUEUE")
    assert profile_options("slurm-cpu")["cores"] == 8  # a later load of the packaged file wins again
    with pytest.raises(ValueError, match="unknown cluster profile 'nope'.*local-slurm"):
        profile_options("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("slurm-cpu: {cores: 1}\n")
    with pytest.raises(ValueError, match="no 'jobqueue:' mapping"):
        load_profiles(bad)


def test_dry_run_job_scripts():
    local = job_script("local-slurm")
    for line in (
        "#SBATCH -J nudask-local",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=2G",
        "#SBATCH -t 00:30:00",
        "#SBATCH -o /tmp/nudask-slurm-logs/nudask-local-%J.out",
    ):
        assert line in local.splitlines(), line
    command = local.strip().splitlines()[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker ")
    for flags in (
        "--lifetime 25m --lifetime-stagger 1m",
        "--interface lo",
        "--nthreads 1",
        "--local-directory ${TMPDIR:-/tmp}",
        "--death-timeout 30",
    ):
        assert flags in command, flags

    gpu = job_script("slurm-gpu", walltime="02:00:00", queue="a100", account="nu")
    for line in (
        "#SBATCH -p a100",
        "#SBATCH -A nu",
        "#SBATCH -t 02:00:00",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --mem=64G",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in gpu.splitlines(), line
    command = gpu.strip().splitlines()[-1]
    assert command.startswith("apptainer exec --nv ${NUDASK_SIF:-nudask.sif} python -m distributed")
    assert "--resources GPU=1" in command and "--lifetime 460m --lifetime-stagger 10m" in command

    cpu = job_script("slurm-cpu-apptainer", cores=4, processes=4, memory="16GiB")
    assert "#SBATCH --mem=16G" in cpu and "--nworkers 4" in cpu and "--memory-limit 4.00GiB" in cpu
    assert "apptainer exec ${NUDASK_SIF:-nudask.sif} python -m distributed" in cpu


CHILD = textwrap.dedent("""
    import os, sys
    if sys.argv[1] == "nudask":
        from nudask import cluster
        cluster.load_profiles()
        print(cluster.job_script("slurm-cpu"))
        cluster.import_jobqueue().SLURMCluster  # the real module, imported
    else:
        import dask_jobqueue  # plain import: the control
""")


@pytest.mark.parametrize("how", ["nudask", "plain"])
def test_no_jobqueue_yaml_in_home_or_repo(tmp_path, how):
    """nudask imports dask-jobqueue without it copying jobqueue.yaml into ~/.config/dask."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DASK_CONFIG"} | {"HOME": str(home)}
    before = sorted(p for p in REPO.rglob("jobqueue.yaml") if ".venv" not in p.parts)
    subprocess.run(
        [sys.executable, "-c", CHILD, how], cwd=REPO, env=env, check=True, capture_output=True, timeout=120
    )
    written = list(home.rglob("*.yaml"))
    after = sorted(p for p in REPO.rglob("jobqueue.yaml") if ".venv" not in p.parts)
    assert after == before == [REPO / "deploy" / "jobqueue.yaml", REPO / "nudask" / "jobqueue.yaml"]
    assert not (REPO / "dask-logs").exists()  # the dry run made no log folder
    if how == "nudask":
        assert written == [], written
    else:  # the control shows what is being prevented
        assert [p.name for p in written] == ["jobqueue.yaml"]


def test_dashboard_status_is_the_bokeh_page():
    with cluster.local_cluster(n_workers=1) as lc, Client(lc) as client:
        link = client.dashboard_link
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", link), link
        with urllib.request.urlopen(link, timeout=30) as r:
            status, body = r.status, r.read().decode()
        assert status == 200
        # without bokeh /status answers 200 too, with a "needs bokeh" page
        assert "Dask Diagnostic UI" in body and "static/js/bokeh.min.js" in body
        script = re.search(r'src="(static/js/bokeh\.min\.js[^"]*)"', body).group(1)
        with urllib.request.urlopen(link.rsplit("/", 1)[0] + "/" + script, timeout=30) as r:
            assert r.status == 200 and b"Bokeh" in r.read(200_000)


def test_monitor_run_saves_report_and_log(tmp_path, client):
    from nudask.events import Chunk
    from nudask.records import ChunkResult, PartFile

    records = [
        ChunkResult(
            (c := Chunk("a.h5", "microboone", k, k + 2),), PartFile("p", 2, 10, "x", (c,)), 0.5, "vm:1"
        )
        for k in (0, 2)
    ]
    records.append(ChunkResult((Chunk("b.h5", "microboone", 0, 2),), None, 0.1, "vm:2", "InputError: bad"))
    with monitor_run(client, tmp_path) as log:
        assert client.submit(sum, [1, 2]).result() == 3
        log.add_chunks(records)
    saved = read_run_log(tmp_path)
    assert saved["status"] == "completed" and saved["events"] == 4 and saved["tasks"] == 3
    assert saved["events_per_second"] == pytest.approx(4 / saved["seconds"], rel=0.01)
    assert saved["failures"] == [
        {
            "chunks": [{"path": "b.h5", "reader": "microboone", "start": 0, "stop": 2}],
            "error": "InputError: bad",
        }
    ]
    assert saved["extra"]["by_process"]["vm:1"] == {"chunks": 2, "events": 4, "busy_seconds": 1.0}
    (worker,) = saved["workers"].values()
    assert worker["pid"] == os.getpid() and worker["slurm_job_id"] is None  # in-process cluster
    assert saved["dashboard"] == client.dashboard_link
    assert 0 <= saved["seconds_to_first_worker"] < saved["seconds"]
    html = (tmp_path / REPORT).read_text()
    assert "Dask Performance Report" in html and "bokeh" in html.lower()

    with pytest.raises(ZeroDivisionError), monitor_run(client, tmp_path, report=False):
        client.submit(lambda: 1 / 0).result()
    saved = json.loads((tmp_path / RUN_LOG).read_text())
    assert saved["status"] == "failed" and "ZeroDivisionError" in saved["error"]


def test_cli_dry_run_prints_the_job_script(capsys, tmp_path):
    from nudask.cli import main

    assert (
        main(
            [
                "preprocess",
                "x.h5",
                "--out",
                str(tmp_path / "ds"),
                "--cluster",
                "slurm-gpu",
                "--cluster-option",
                "walltime=12:00:00",
                "--cluster-option",
                "queue=a100",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for line in ("#SBATCH -t 12:00:00", "#SBATCH -p a100", "#SBATCH --gres=gpu:1"):
        assert line in out.splitlines(), line
    assert "apptainer exec --nv" in out and not (tmp_path / "ds").exists()


def test_local_workers_get_malloc_settings_without_leaking_them():
    from nudask.cluster import WORKER_MALLOC, local_cluster

    before = {k: os.environ.get(k) for k in WORKER_MALLOC}
    with local_cluster(n_workers=1) as cluster, Client(cluster) as client:
        seen = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC})
    assert list(seen.values()) == [WORKER_MALLOC]
    assert {k: os.environ.get(k) for k in WORKER_MALLOC} == before
