"""What a run did, saved beside its dataset: a Dask performance report and a run log.

:func:`monitor_run` wraps a computation. It saves ``_performance.html``
(:class:`distributed.performance_report`: task stream, worker profiles,
bandwidth) and ``_run_log.json``: start and end, seconds, events/s, every
worker seen during the run (host, pid, SLURM job id), tasks and failures.
Both names start with ``_`` so Parquet readers of the folder skip them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import ChunkResult

REPORT = "_performance.html"
RUN_LOG = "_run_log.json"


def worker_identity() -> dict[str, Any]:
    """Host, pid and batch job of the calling process (run on each worker)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


@dataclass
class RunLog:
    """The record a run leaves; the caller fills ``events``, ``tasks`` and ``failures``."""

    started: str = ""
    ended: str = ""
    seconds: float = 0.0
    events: int | None = None
    events_per_second: float | None = None
    tasks: int | None = None
    failures: list[dict] = field(default_factory=list)
    workers: dict[str, dict] = field(default_factory=dict)  # address -> identity and lifetime
    seconds_to_first_worker: float | None = None  # waiting for batch jobs to start, within seconds
    dashboard: str | None = None
    status: str = "running"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_chunks(self, results: list[ChunkResult]) -> None:
        """Fill tasks, events, failures and per-process timings from preprocess' chunk results."""
        self.tasks = len(results)
        self.events = sum(r.events for r in results)
        self.failures += [
            {"chunks": [asdict(c) for c in r.chunks], "error": r.error} for r in results if r.error
        ]
        per: dict[str, dict] = {}
        for r in results:
            p = per.setdefault(r.worker or "?", {"chunks": 0, "events": 0, "busy_seconds": 0.0})
            p["chunks"] += 1
            p["events"] += r.events
            p["busy_seconds"] = round(p["busy_seconds"] + r.seconds, 3)
        self.extra["by_process"] = per
        seconds = [r.seconds for r in results if r.ok]
        if seconds:
            self.extra["chunk_seconds"] = {
                "min": min(seconds),
                "max": max(seconds),
                "mean": round(sum(seconds) / len(seconds), 3),
            }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _WorkerWatch:
    """Polls the scheduler so that workers that join or die mid-run are recorded."""

    def __init__(self, client, log: RunLog, interval: float):
        self.client, self.log, self.interval = client, log, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nudask-worker-watch", daemon=True)

    def poll(self) -> None:
        now = round(time.time(), 3)
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        except Exception:  # scheduler busy or gone: the next poll catches up
            return
        jobs = _job_ids(self.client)
        new = [a for a in info if a not in self.log.workers]
        for addr, w in info.items():
            rec = self.log.workers.setdefault(
                addr,
                {
                    "name": str(w.get("name")),
                    "host": w.get("host"),
                    "nthreads": w.get("nthreads"),
                    "first_seen": now,
                },
            )
            rec["last_seen"] = now
            # jobs of several worker processes name them "<job name>-<k>"
            job = jobs.get(rec["name"]) or jobs.get(rec["name"].rpartition("-")[0])
            if job and not rec.get("slurm_job_id"):
                rec["slurm_job_id"] = job
        if new:  # ask the new workers themselves (covers clusters made elsewhere)
            try:
                ids = self.client.run(worker_identity, workers=new, on_error="return")
            except Exception:
                ids = {}
            for addr, ident in ids.items():
                if isinstance(ident, dict):
                    rec = self.log.workers[addr]
                    rec.update({k: v for k, v in ident.items() if v is not None or k not in rec})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> _WorkerWatch:
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()
        live = set(_safe_workers(self.client))
        for addr, rec in self.log.workers.items():
            rec["left_during_run"] = addr not in live


def _safe_workers(client) -> dict:
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except Exception:
        return {}


def _job_ids(client) -> dict[str, str]:
    """Worker name -> batch job id, when the client's cluster is a dask-jobqueue one."""
    workers = getattr(getattr(client, "cluster", None), "workers", None) or {}
    return {str(name): job.job_id for name, job in list(workers.items()) if getattr(job, "job_id", None)}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@contextmanager
def monitor_run(
    client, out_dir: str | os.PathLike, *, report: bool = True, interval: float = 1.0
) -> Iterator[RunLog]:
    """Record a run on ``client`` into ``out_dir`` (``_performance.html``, ``_run_log.json``).

    Parameters
    ----------
    client
        The :class:`distributed.Client` the run computes on.
    out_dir
        The dataset folder (it must exist); the files are written at exit, also
        when the run raises (``status: "failed"`` and the error in the log).
    report
        Save the Dask performance report (a self-contained HTML page).
    interval
        Seconds between polls of the scheduler's worker list.

    Yields
    ------
    RunLog
        Set ``events``, ``tasks`` and ``failures`` on it before the block ends;
        ``events_per_second`` is computed from ``events`` and the wall time.
    """
    from distributed import performance_report

    out_dir = os.fspath(out_dir)
    log = RunLog(started=_now(), dashboard=getattr(client, "dashboard_link", None))
    t0, epoch0 = time.perf_counter(), time.time()
    try:
        with client.as_current(), _WorkerWatch(client, log, interval):
            if report:
                with (
                    _quiet_offload_sizing(),
                    _safe(performance_report(filename=os.path.join(out_dir, REPORT)), REPORT),
                ):
                    yield log
            else:
                yield log
        log.status = "completed"
    except BaseException as err:
        log.status = "failed"
        log.error = "".join(traceback.format_exception_only(type(err), err)).strip()
        raise
    finally:
        log.ended = _now()
        log.seconds = round(time.perf_counter() - t0, 3)
        if log.workers:
            first = min(w["first_seen"] for w in log.workers.values())
            log.seconds_to_first_worker = round(max(0.0, first - epoch0), 3)
        if log.events is not None and log.seconds > 0:
            log.events_per_second = round(log.events / log.seconds, 3)
        try:  # written last; its own failure never hides the run's result or first error
            write_run_log(out_dir, log)
        except Exception as err:
            warnings.warn(f"nudask: could not write {RUN_LOG} in '{out_dir}' ({_why(err)})", stacklevel=3)


def _why(err: BaseException) -> str:
    import errno

    if isinstance(err, OSError) and err.errno:
        return f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror or err}"
    return f"{type(err).__name__}: {err}"


class _QuietOffloadSizing(logging.Filter):
    """Drops distributed's warning that it could not size a message before sending it.

    The performance report fetches the workers' profiles: call trees deeper than
    ``dask.sizeof`` recurses, so sizing them fails and distributed, by design, serialises
    them off the event loop instead (``Defaulting to -1 B``). Nothing is lost; the warning
    only alarms.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Defaulting to -1 B" not in record.getMessage()


@contextmanager
def _quiet_offload_sizing() -> Iterator[None]:
    logger, quiet = logging.getLogger("distributed.sizeof"), _QuietOffloadSizing()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextmanager
def _safe(cm, what: str) -> Iterator[None]:
    """Enter ``cm`` (a report writer); a failure of its own to start or save is a warning."""
    try:
        cm.__enter__()
    except Exception as err:
        warnings.warn(f"nudask: could not start {what} ({_why(err)})", stacklevel=3)
        yield
        return
    try:
        yield
    except BaseException as first:
        try:
            cm.__exit__(type(first), first, first.__traceback__)
        except Exception as err:
            warnings.warn(f"nudask: could not write {what} ({_why(err)})", stacklevel=3)
        raise
    try:
        cm.__exit__(None, None, None)
    except Exception as err:
        warnings.warn(f"nudask: could not write {what} ({_why(err)})", stacklevel=3)


def write_run_log(out_dir: str, log: RunLog) -> str:
    """Write ``log`` as ``out_dir/_run_log.json`` (atomically); return the path."""
    path = os.path.join(out_dir, RUN_LOG)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(log.to_dict(), f, indent=1, default=str)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_run_log(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The run log saved in a dataset folder."""
    with open(os.path.join(os.fspath(out_dir), RUN_LOG)) as f:
        return json.load(f)
