"""Cluster profiles, dry-run job scripts, config hygiene, dashboard and run monitoring."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
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


def test_monitor_run_hides_only_the_offloaded_sizing_warning(tmp_path, client, caplog):
    """The report's deep profile trees: distributed fails to size them and offloads (-1 B)."""
    from distributed.sizeof import safe_sizeof

    deep: dict = {}
    node = deep
    for _ in range(400):  # deeper than dask.sizeof recurses
        node["children"] = node = {}

    def sizing(default: float) -> list[str]:
        caplog.clear()
        safe_sizeof(deep, default_size=default)
        return [r.getMessage() for r in caplog.records if r.name == "distributed.sizeof"]

    with caplog.at_level(logging.WARNING, logger="distributed.sizeof"):
        with monitor_run(client, tmp_path):
            assert sizing(-1) == []  # the offload decision: hidden
            assert len(sizing(1e6)) == 1  # any other sizing failure: still said
        assert len(sizing(-1)) == 1  # only while a run is monitored


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


# --- network exposure and TLS -------------------------------------------------------------------


def _write_pem(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def _no_wide_binding(text: str) -> None:
    assert "0.0.0.0" not in text and "[::]" not in text and "tcp://:" not in text, text


def test_dry_run_of_slurm_cpu_binds_nothing_wide(capsys, tmp_path):
    from nudask.cli import main

    args = ["preprocess", "x.h5", "--out", str(tmp_path / "ds"), "--cluster", "slurm-cpu", "--dry-run"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    _no_wide_binding(plain)
    command = plain.strip().splitlines()[-1]
    assert "--dashboard-address 127.0.0.1:0" in command  # the workers' own HTTP pages: loopback
    assert "--tls" not in command and " tcp://SCHEDULER-ADDRESS:8786 " in command
    # the scheduler's dashboard binds to loopback in every SLURM profile
    for name in NAMED:
        address = profile_options(name)["scheduler_options"]["dashboard_address"]
        assert address.startswith("127.0.0.1:"), (name, address)
        _no_wide_binding(job_script(name))

    assert main([*args, "--tls"]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1]
    _no_wide_binding(command)
    assert " tls://SCHEDULER-ADDRESS:8786 " in command and "--protocol tls://" in command
    folder = f"{os.getcwd()}/.nudask-tls-XXXXXXXX"
    for flag, name in (
        ("--tls-ca-file", "ca.pem"),
        ("--tls-cert", "worker-cert.pem"),
        ("--tls-key", "worker-key.pem"),
    ):
        assert f"{flag} {folder}/{name}" in command, flag
    assert "PRIVATE KEY" not in command and "CERTIFICATE" not in command


def test_submit_host_address_is_one_real_interface():
    address = cluster.submit_host_address()
    assert address not in {"0.0.0.0", "::", ""} and not address.startswith("127.")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))  # an address of this host, not a guess


def test_slurm_cpu_scheduler_listens_on_one_address_dashboard_on_loopback(tmp_path, capsys):
    """A real slurm-cpu scheduler (no job submitted): where it and its dashboard listen."""
    address = cluster.submit_host_address()
    with cluster.slurm_cluster("slurm-cpu", log_directory=str(tmp_path / "logs")) as sc:
        listening = [listener.listen_address for listener in sc.scheduler.listeners]
        assert listening == [sc.scheduler_address] and sc.scheduler_address.startswith(f"tcp://{address}:")
        dashboard = {sock[0] for sock in cluster._dashboard_sockets(sc)}
        assert dashboard == {"127.0.0.1"}, dashboard
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", sc.dashboard_link), sc.dashboard_link
        with urllib.request.urlopen(sc.dashboard_link, timeout=30) as r:
            assert r.status == 200
        _no_wide_binding(sc.job_script())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("nudask:")]
    # one line for what listens beyond loopback: the scheduler (address and why), the worker jobs
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"nudask: scheduler listens on {sc.scheduler_address} beyond loopback")
    assert "default route" in lines[0] and "no TLS" in lines[0]
    assert lines[1].startswith("nudask: worker jobs listen on all interfaces") and "no TLS" in lines[1]

    # the profile's interface (here loopback) wins; nothing beyond loopback, nothing printed
    with cluster.slurm_cluster("slurm-cpu", interface="lo", log_directory=str(tmp_path / "logs")) as sc:
        assert sc.scheduler_address.startswith("tcp://127.0.0.1:")
    assert "nudask:" not in capsys.readouterr().out


def test_slurm_cluster_tls_keeps_worker_certificates_private(tmp_path, capsys):
    with cluster.slurm_cluster(
        "slurm-cpu", tls=True, shared_temp_directory=str(tmp_path), log_directory=str(tmp_path / "logs")
    ) as sc:
        assert sc.scheduler_address.startswith("tls://")
        security = sc.security
        assert security.require_encryption
        folder = Path(security.tls_worker_key).parent
        assert folder.parent == tmp_path and folder.name.startswith(".nudask-tls-")
        assert folder.stat().st_mode & 0o777 == 0o700
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == ["ca.pem", "worker-cert.pem", "worker-key.pem"]
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
        assert "PRIVATE KEY" in (folder / "worker-key.pem").read_text()
        script = sc.job_script()
        assert f"--tls-key {folder}/worker-key.pem" in script and "--protocol tls://" in script
        assert "PRIVATE KEY" not in script
        # a client without this run's certificate is turned away
        # (without a certificate the client cannot even start a TLS connection)
        with pytest.raises(TypeError, match="TLS expects a `ssl_context`"):
            Client(sc.scheduler_address, timeout="3s")
    assert not folder.exists()  # removed on close
    out = capsys.readouterr().out
    assert "scheduler listens on tls://" in out and "TLS: only holders" in out


def test_local_cluster_over_tls_computes_and_refuses_strangers():
    from distributed.security import Security

    with cluster.local_cluster(n_workers=1, tls=True) as lc, Client(lc) as client:
        assert lc.scheduler_address.startswith("tls://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 1 and all(a.startswith("tls://127.0.0.1:") for a in workers), workers
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert sum(client.gather(client.map(lambda x: x * x, range(4)))) == 14

        def listening_hosts() -> set[str]:  # nested: pickled by value for the worker processes
            import psutil

            conns = psutil.Process().net_connections(kind="inet")
            return {c.laddr.ip for c in conns if c.status == "LISTEN"}

        # the worker process (comm and HTTP pages) and its nanny (which lives in this process)
        assert list(client.run(listening_hosts).values()) == [{"127.0.0.1"}]
        assert [n.address.rpartition(":")[0] for n in lc.workers.values()] == ["tls://127.0.0.1"]
        assert {sock[0] for sock in cluster._dashboard_sockets(lc)} == {"127.0.0.1"}
        # another run's certificate: the scheduler does not trust it (mutual TLS)
        with pytest.raises((OSError, TimeoutError)):
            Client(lc.scheduler_address, security=Security.temporary(), timeout="3s")


def test_tls_from_certificate_files_and_bad_settings(tmp_path):
    from distributed.security import Security

    from nudask.errors import ConfigError

    tmp = Security.temporary()  # a self-signed certificate: it is its own CA
    cert = _write_pem(tmp_path / "cert.pem", tmp.tls_client_cert, 0o644)
    key = _write_pem(tmp_path / "key.pem", tmp.tls_client_key)
    with (
        cluster.local_cluster(n_workers=1, tls_cert=cert, tls_key=key, tls_ca=cert) as lc,
        Client(lc) as client,
    ):
        assert lc.scheduler_address.startswith("tls://")  # certificate files imply TLS
        assert all(a.startswith("tls://") for a in client.scheduler_info()["workers"])
        assert client.submit(len, "abc").result() == 3
        assert lc.security.tls_worker_key == key and lc.security.tls_ca_file == cert
        # a client of a scheduler started elsewhere joins with the same files
        security = cluster.tls_security(tls_cert=cert, tls_key=key, tls_ca=cert, temporary=False)
        with Client(lc.scheduler_address, security=security) as other:
            assert other.submit(sum, [2, 2]).result() == 4

    def bad(match, **kwargs):
        with pytest.raises(ConfigError, match=match):
            cluster.tls_security(**kwargs)

    bad("tls must be true or false, got 'yes'", tls="yes")
    bad("needs tls-ca as well", tls_cert=cert, tls_key=key)
    bad("is not a file", tls_cert=str(tmp_path / "nope.pem"), tls_ca=cert)
    bad("started elsewhere needs its certificates", tls=True, temporary=False)
    os.chmod(key, 0o644)
    bad(r"readable by others: chmod 600", tls_cert=cert, tls_key=key, tls_ca=cert)
    os.chmod(key, 0o600)
    other = _write_pem(tmp_path / "other-key.pem", Security.temporary().tls_client_key)
    bad("cannot use tls-cert", tls_cert=cert, tls_key=other, tls_ca=cert)  # key of another certificate
    with pytest.raises(ConfigError, match="tls must be true or false"):
        job_script("slurm-cpu", tls="on")
    # the command line reports these as one line and exits 2
    from nudask.cli import main

    assert (
        main(["preprocess", "x.h5", "--out", str(tmp_path / "ds"), "--tls-key", key, "--workers", "1"]) == 2
    )


@pytest.mark.slow
def test_cli_preprocess_over_tls(bnb_files, tmp_path, capsys):
    from nudask.cli import main
    from nudask.dataset import open_dataset

    out = tmp_path / "ds"
    args = ["preprocess", *bnb_files, "--out", str(out), "-O", "geometry=small", "--tls", "--workers", "2"]
    assert main(args) == 0
    assert "dashboard: http://127.0.0.1:" in capsys.readouterr().out
    ds = open_dataset(out)
    assert ds.manifest.events == 16 and len(ds) == 16 and ds.manifest.failed == []
    workers = read_run_log(out)["workers"]  # address -> identity of every worker seen in the run
    assert len(workers) == 2 and all(a.startswith("tls://127.0.0.1:") for a in workers), workers
