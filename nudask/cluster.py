"""Where the work runs: the current Dask client, a LocalCluster, or a SLURMCluster.

SLURM clusters come from named profiles (``nudask/jobqueue.yaml``, documented
as ``deploy/jobqueue.yaml``) read into ``dask.config`` under ``jobqueue.<name>``
in memory only. dask-jobqueue is imported lazily, with dask's config folder
pointed away, so that it cannot copy its default ``jobqueue.yaml`` into the
user's ``~/.config/dask`` (or wherever ``DASK_CONFIG`` points).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import dask.config
import yaml
from distributed import Client, LocalCluster

from . import config
from .errors import ConfigError
from .options import key_value_argument

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster

PROFILES = os.path.join(os.path.dirname(__file__), "jobqueue.yaml")
PROFILES_ENV = "NUDASK_JOBQUEUE"  # path of a user's edited copy of deploy/jobqueue.yaml
DEFAULT_PROFILE = "slurm-cpu"
# SLURMCluster options that belong to the cluster (scheduler), not to the job script
_CLUSTER_ONLY = {
    "scheduler_options",
    "n_workers",
    "silence_logs",
    "asynchronous",
    "security",
    "shared_temp_directory",
    "dashboard_address",
    "host",
    "scheduler_cls",
}
_DEPRECATED = {"extra", "env_extra", "job_extra", "header_skip", "project"}


# glibc malloc settings for worker processes. Dask's default MALLOC_TRIM_THRESHOLD_=65536
# also freezes glibc's mmap threshold at 128 KiB, so every image-sized array is a fresh
# mmap and its pages are faulted in again; with the worker's compute thread in its own
# arena that made a full-geometry chunk 3.5x slower in a worker than in a plain process
# (measured: 3.9 s vs 1.1 s for 20 events). Same resident memory.
WORKER_MALLOC = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "134217728",
}


def local_cluster(**overrides) -> LocalCluster:
    """A LocalCluster of single-threaded worker processes bound to loopback.

    Its workers (those started here; not ones added by a later ``scale``) get
    :data:`WORKER_MALLOC` in their environment.
    """
    opts = {k.replace("-", "_"): v for k, v in config.get("local-cluster").items()}
    opts.update(overrides)
    with worker_malloc():
        return LocalCluster(processes=True, dashboard_address=opts.pop("dashboard_address"), **opts)


@contextmanager
def worker_malloc() -> Iterator[None]:
    """Worker processes started inside this context get :data:`WORKER_MALLOC`.

    The nanny applies ``distributed.nanny.pre-spawn-environ`` before it spawns
    the worker (too late for glibc any later), but values already in this
    process's ``os.environ`` win over it, and it leaves its own there: so both
    are set here and ``os.environ`` is restored afterwards, keeping other
    clusters of this process unaffected. SLURM workers get the same variables
    from their profile's ``job-script-prologue``.
    """
    saved = {k: os.environ.get(k) for k in WORKER_MALLOC}
    os.environ.update(WORKER_MALLOC)
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_MALLOC}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def current_client() -> Client | None:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


@contextmanager
def client_or_local(client: Client | None = None, *, verbose: bool = True) -> Iterator[Client]:
    """Yield ``client``, else the current one, else one on a new LocalCluster (closed after)."""
    client = client or current_client()
    if client is not None:
        yield client
        return
    with local_cluster() as cluster, Client(cluster) as client:
        if verbose:
            print(
                f"nudask: local Dask cluster with {len(cluster.workers)} workers; "
                f"dashboard: {client.dashboard_link}",
                flush=True,
            )
        yield client


def import_jobqueue() -> ModuleType:
    """``dask_jobqueue``, imported without writing into the dask config folder.

    On import it calls ``dask.config.ensure_file``, which copies its default
    ``jobqueue.yaml`` into ``dask.config.PATH`` (``~/.config/dask``): point
    that at a throwaway folder for the duration of the import.
    """
    if "dask_jobqueue" not in sys.modules:
        saved = dask.config.PATH
        with tempfile.TemporaryDirectory(prefix="nudask-dask-config-") as tmp:
            dask.config.PATH = tmp
            try:
                import dask_jobqueue  # noqa: F401
            finally:
                dask.config.PATH = saved
    return sys.modules["dask_jobqueue"]


def parse_cluster_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--cluster-option`` -> ``(key, value)``; VALUE is YAML.

    Times stay text (YAML 1.1 would read ``12:00:00`` as the number 43200):

    >>> parse_cluster_option("walltime=12:00:00"), parse_cluster_option("cores=4")
    (('walltime', '12:00:00'), ('cores', 4))
    >>> parse_cluster_option("job-extra-directives=[--exclusive]")
    ('job_extra_directives', ['--exclusive'])
    """
    return key_value_argument(text)


def load_profiles(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Read the cluster profiles into ``dask.config`` and return them.

    Parameters
    ----------
    path
        A profiles file like ``deploy/jobqueue.yaml``; default ``$NUDASK_JOBQUEUE``,
        else the copy shipped with nudask.

    Returns
    -------
    dict
        Profile name -> options (dashed keys): dask-jobqueue's ``jobqueue.slurm``
        defaults, updated by the file's profile, updated by a profile of the same
        name in the user's dask config files or ``DASK_JOBQUEUE__*`` variables.
    """
    import_jobqueue()  # its defaults (jobqueue.slurm) must be in dask.config first
    path = os.fspath(path or os.environ.get(PROFILES_ENV) or PROFILES)
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc.get("jobqueue"), dict):
        raise ConfigError(f"'{path}' has no 'jobqueue:' mapping of named profiles")
    base = dask.config.get("jobqueue.slurm")
    user = dask.config.collect().get("jobqueue", {})  # the user's files and env only
    profiles = {}
    for name, opts in doc["jobqueue"].items():
        merged = {**base}
        # DASK_JOBQUEUE__SLURM_CPU__QUEUE=... arrives as "slurm_cpu"
        for layer in (opts or {}, user.get(name) or user.get(name.replace("-", "_")) or {}):
            merged.update({k.replace("_", "-"): v for k, v in layer.items()})
        profiles[name] = merged
    # set, not update_defaults: a later call with another file must win over this one
    dask.config.set({f"jobqueue.{name}": opts for name, opts in profiles.items()})
    return profiles


def profile_options(
    profile: str = DEFAULT_PROFILE, *, profiles: str | os.PathLike | None = None, **overrides: Any
) -> dict[str, Any]:
    """SLURMCluster keyword arguments of ``profile``, with ``overrides`` applied.

    >>> opts = profile_options("local-slurm", memory="3GiB")
    >>> opts["memory"], opts["cores"], opts["job_name"]
    ('3GiB', 1, 'nudask-local')
    """
    known = load_profiles(profiles)
    if profile not in known:
        raise ConfigError(f"unknown cluster profile {profile!r}; profiles: {', '.join(sorted(known))}")
    opts = {k.replace("-", "_"): v for k, v in known[profile].items()}
    opts["job_name"] = opts.pop("name")  # in jobqueue.yaml `name` is the job's name
    opts.update({k.replace("-", "_"): v for k, v in overrides.items()})
    if opts.get("python") is None:  # spawned workers must run this interpreter (this venv)
        opts["python"] = sys.executable
    # deprecated aliases: dask-jobqueue warns about them even when they are None
    return {k: v for k, v in opts.items() if v is not None or k not in _DEPRECATED}


def job_script(
    profile: str = DEFAULT_PROFILE, *, profiles: str | os.PathLike | None = None, **overrides: Any
) -> str:
    """The batch script a worker job of ``profile`` would be submitted with (a dry run).

    No scheduler is started and nothing is submitted; the scheduler address in
    the script is a placeholder.
    """
    opts = profile_options(profile, profiles=profiles, **overrides)
    opts = {k: v for k, v in opts.items() if k not in _CLUSTER_ONLY}
    logs = opts.pop("log_directory", None)
    # SLURMJob creates its log directory: give it a throwaway one (a dry run
    # writes nothing), then put the real one into the #SBATCH -o/-e lines
    with tempfile.TemporaryDirectory(prefix="nudask-dry-run-") as tmp:
        job = import_jobqueue().slurm.SLURMJob(
            scheduler="tcp://SCHEDULER-ADDRESS:8786",
            name="nudask-worker",
            config_name=profile,
            log_directory=tmp if logs else None,
            **opts,
        )
        script = job.job_script()
    return script.replace(f"{tmp}/", f"{logs}/") if logs else script


def slurm_cluster(
    profile: str = DEFAULT_PROFILE,
    *,
    jobs: int | None = None,
    profiles: str | os.PathLike | None = None,
    **overrides: Any,
) -> SLURMCluster:
    """A SLURMCluster made from a named profile, optionally with ``jobs`` worker jobs.

    Parameters
    ----------
    profile
        Name of a profile in the profiles file (``slurm-cpu``, ``slurm-gpu``,
        ``slurm-cpu-apptainer``, ``local-slurm``, or one of your own).
    jobs
        Keep this many worker jobs: ``adapt(minimum_jobs=jobs, maximum_jobs=jobs)``,
        so a job that ends (``--lifetime``, walltime, ``scancel``, node failure)
        is replaced by a new submission. None: call ``scale``/``adapt`` yourself.
    profiles
        Profiles file; see :func:`load_profiles`.
    **overrides
        Any SLURMCluster option, e.g. ``walltime="08:00:00"``, ``queue="long"``.

    Returns
    -------
    SLURMCluster
        Use as a context manager, or ``close()`` it: that cancels its jobs.
    """
    opts = profile_options(profile, profiles=profiles, **overrides)
    if opts.get("log_directory"):
        os.makedirs(opts["log_directory"], exist_ok=True)
    cluster = import_jobqueue().SLURMCluster(config_name=profile, **opts)
    if jobs:
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    return cluster
