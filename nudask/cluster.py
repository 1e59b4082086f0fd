"""Where the work runs: the current Dask client, a LocalCluster, or a SLURMCluster.

SLURM clusters come from named profiles (``nudask/jobqueue.yaml``, documented
as ``deploy/jobqueue.yaml``) read into ``dask.config`` under ``jobqueue.<name>``
in memory only. dask-jobqueue is imported lazily, with dask's config folder
pointed away, so that it cannot copy its default ``jobqueue.yaml`` into the
user's ``~/.config/dask`` (or wherever ``DASK_CONFIG`` points).

Network exposure (see "Security model" in ``deploy/README.md``): a SLURM
cluster's scheduler listens on one address of the submit host (the profile's
``interface``, else the address of the host's default route, never all
interfaces), its dashboard on ``127.0.0.1``; a LocalCluster only on loopback.
Whatever listens beyond loopback is announced in one printed line. With
``tls=True`` scheduler, workers and client talk TLS with mutual certificate
checks (:func:`tls_security`).
"""

from __future__ import annotations

import copy as copy_module
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import dask.config
import yaml
from distributed import Client, LocalCluster
from distributed.security import Security

from . import config
from .errors import ConfigError, OutputError
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
# nudask's own profile keys (not SLURMCluster options): TLS on/off and certificate files
TLS_KEYS = ("tls", "tls_cert", "tls_key", "tls_ca")
DASHBOARD_ADDRESS = "127.0.0.1:8787"  # a SLURM scheduler's dashboard unless the profile says otherwise
_ALL_INTERFACES = {"", "0.0.0.0", "::", "[::]", "*"}


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


def local_cluster(
    *,
    tls: bool | None = None,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
    tls_ca: str | os.PathLike | None = None,
    **overrides,
) -> LocalCluster:
    """A LocalCluster of single-threaded worker processes bound to loopback.

    Its workers (those started here; not ones added by a later ``scale``) get
    :data:`WORKER_MALLOC` in their environment. ``tls=True`` (or certificate
    files) runs scheduler, workers and client over TLS, see :func:`tls_security`;
    ``Client(cluster)`` picks the certificates up from the cluster.
    """
    opts = {k.replace("-", "_"): v for k, v in config.get("local-cluster").items()}
    opts.update(overrides)
    security = tls_security(tls, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)
    if security is not None:
        opts.update(security=security, protocol="tls://")
    with worker_malloc():
        cluster = LocalCluster(processes=True, dashboard_address=opts.pop("dashboard_address"), **opts)
    _announce_exposure(cluster, "the host= option asks for it", tls=security is not None)
    return cluster


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


def keep_to_worker_threads() -> None:
    """Keep Keras work in a Dask task to its worker's threads (TensorFlow would take every core).

    Two single-threaded workers on one node then run two trainings (or inferences) on two
    cores instead of four threads fighting for them. Set once per worker process, before
    TensorFlow starts its thread pools; a no-op outside a worker or on another backend.
    """
    try:
        from distributed import get_worker

        n = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already started in this process (a second task): kept as set
        pass


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


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def submit_host_address() -> str:
    """The address of this host that a SLURM scheduler listens on when the profile names no interface.

    It is the source address of the host's default route: "connecting" a UDP
    socket to a public address (8.8.8.8, else 2001:4860:4860::8888) makes the
    kernel pick the address it would send from, without sending anything. A
    host without a default route gets the first non-loopback address its
    hostname resolves to. Never a wildcard (all interfaces), never loopback.

    Raises
    ------
    ConfigError
        Neither gives an address: name the interface in the profile.
    """
    for family, target in ((socket.AF_INET, "8.8.8.8"), (socket.AF_INET6, "2001:4860:4860::8888")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((target, 80))
                address = sock.getsockname()[0]
        except OSError:
            continue
        if address not in _ALL_INTERFACES and not _is_loopback(address):
            return address
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    for *_, sockaddr in infos:
        host = str(sockaddr[0])
        if not _is_loopback(host):
            return host
    raise ConfigError(
        "cannot find this host's address for the scheduler (no default route, and the hostname "
        "resolves to loopback only): set the profile's interface, e.g. --cluster-option interface=ib0"
    )


def scheduler_options(opts: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Where the scheduler of a SLURM cluster with options ``opts`` listens, and why there.

    Returns the ``scheduler_options`` to give SLURMCluster and the reason, for
    the printed line. The dashboard listens on :data:`DASHBOARD_ADDRESS`
    (loopback) unless ``scheduler_options`` names another address. The
    scheduler listens on ``scheduler_options``' ``host`` or ``interface`` if
    given, else on the profile's ``interface`` (dask-jobqueue uses it for the
    scheduler too), else on :func:`submit_host_address`.
    """
    options = {k: v for k, v in (opts.get("scheduler_options") or {}).items() if v is not None}
    options.setdefault("dashboard_address", DASHBOARD_ADDRESS)
    if "host" in options or "interface" in options:
        key = "host" if "host" in options else "interface"
        return options, f"scheduler_options {key}={options[key]!r} asks for it"
    if opts.get("interface"):
        return options, f"the profile's interface {opts['interface']!r}"
    options["host"] = submit_host_address()
    return options, "the address of this host's default route; the profile's interface is null"


def _announce_exposure(cluster, why: str, *, tls: bool) -> None:
    """Print one line for each of the scheduler's listeners (and its dashboard) beyond loopback."""
    from distributed.comm import get_address_host

    risk = (
        "TLS: only holders of this run's certificates get in"
        if tls
        else "no TLS: anyone who can reach it can run code as you (use --tls)"
    )
    for listener in cluster.scheduler.listeners:
        address = listener.listen_address
        if not _is_loopback(get_address_host(address)):
            print(f"nudask: scheduler listens on {address} beyond loopback ({why}); {risk}", flush=True)
    exposed = [a for a in _dashboard_sockets(cluster) if not _is_loopback(a[0])]
    if exposed:
        host, port = exposed[0][:2]
        print(
            f"nudask: dashboard listens on {host}:{port} beyond loopback (scheduler_options "
            "dashboard_address asks for it); plain HTTP: anyone who can reach it sees the run",
            flush=True,
        )


def _announce_workers(interface: str | None, *, tls: bool) -> None:
    """One printed line saying where the worker jobs of a SLURM cluster will listen."""
    from distributed.utils import get_ip_interface

    if interface:
        try:
            if _is_loopback(get_ip_interface(interface)):
                return
        except ValueError:  # an interface of the compute nodes only, e.g. ib0
            pass
        where = f"on their node's interface {interface} (the profile's interface)"
    else:
        where = (
            "on all interfaces of their node (Dask's default; set the profile's interface, e.g. ib0, for one)"
        )
    risk = "TLS: only holders of this run's certificates get in" if tls else "no TLS: use --tls"
    print(f"nudask: worker jobs listen {where}, beyond loopback; {risk}", flush=True)


def _dashboard_sockets(cluster) -> list[tuple]:
    """The addresses (host, port, ...) the scheduler's dashboard really listens on."""
    http = getattr(cluster.scheduler, "http_server", None)
    # tornado keeps its listening sockets here (no public accessor)
    return [sock.getsockname() for sock in (getattr(http, "_sockets", None) or {}).values()]


def _tls_flag(tls: Any) -> bool:
    if tls is not None and not isinstance(tls, bool):
        raise ConfigError(f"tls must be true or false, got {tls!r}")
    return bool(tls)


def tls_security(
    tls: bool | None = None,
    *,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
    tls_ca: str | os.PathLike | None = None,
    temporary: bool = True,
) -> Security | None:
    """The ``distributed.Security`` of a run over TLS, or None when TLS is off.

    Parameters
    ----------
    tls
        True: TLS on. Giving certificate files turns it on as well.
    tls_cert, tls_key, tls_ca
        PEM files: the certificate scheduler, workers and client present, its
        private key (omit it when the certificate file holds the key; it must
        not be readable by others) and the CA that signed the certificates the
        other side must present. None of them: a temporary self-signed CA and
        certificate made for this run only (``Security.temporary()``, needs the
        ``cryptography`` package), kept in memory.
    temporary
        False: certificate files are required (to join a scheduler started elsewhere).

    Every connection is encrypted and both sides check the other's certificate
    against the CA (mutual TLS; host names are not checked).
    """
    files = {"tls-cert": tls_cert, "tls-key": tls_key, "tls-ca": tls_ca}
    given = {k: os.fspath(v) for k, v in files.items() if v}
    if not _tls_flag(tls) and not given:
        return None
    if not given:
        if not temporary:
            raise ConfigError(
                "TLS to a scheduler started elsewhere needs its certificates: "
                "give --tls-cert, --tls-key and --tls-ca"
            )
        try:
            return Security.temporary()
        except ImportError:
            raise ConfigError(
                "a temporary TLS certificate needs the 'cryptography' package: pip install cryptography, "
                "or give certificate files (--tls-cert, --tls-key, --tls-ca)"
            ) from None
    missing = [k for k in ("tls-cert", "tls-ca") if k not in given]
    if missing:
        raise ConfigError(
            f"TLS from files needs {' and '.join(missing)} as well (given: {', '.join(given)}); "
            "or give none of them for a temporary certificate"
        )
    for key, path in given.items():
        if not os.path.isfile(path):
            raise ConfigError(f"{key} '{path}' is not a file: give the path of a PEM file")
    secret = given.get("tls-key", given["tls-cert"])
    if os.stat(secret).st_mode & (stat.S_IRGRP | stat.S_IROTH) and (
        "tls-key" in given or "PRIVATE KEY" in Path(secret).read_text(errors="replace")
    ):
        raise ConfigError(
            f"private key '{secret}' is readable by others: chmod 600 '{secret}' (anyone holding it "
            "can join the cluster)"
        )
    try:
        ssl.create_default_context(cafile=given["tls-ca"]).load_cert_chain(
            given["tls-cert"], given.get("tls-key")
        )
    except (ssl.SSLError, ValueError) as err:
        raise ConfigError(
            f"cannot use tls-cert '{given['tls-cert']}' / tls-key '{given.get('tls-key')}' / tls-ca "
            f"'{given['tls-ca']}' ({err}): give PEM files, the key matching the certificate"
        ) from None
    roles = {
        f"tls_{role}_{part}": given.get(f"tls-{part}")
        for role in ("client", "scheduler", "worker")
        for part in ("cert", "key")
    }
    return Security(require_encryption=True, tls_ca_file=given["tls-ca"], **roles)


def _private_copy(security: Security, base: str | os.PathLike | None) -> tuple[Security, str | None]:
    """``security`` with the workers' in-memory PEMs written to files in a new private folder.

    SLURM workers read their certificate, key and the CA from these files (the
    paths, not the PEMs, go into the job script). The folder, under ``base``
    (``shared-temp-directory``; default: the current folder), must be on a file
    system the nodes see; it is ``0700`` and the files ``0600``, so only you
    (and root) can read them. Scheduler and client keep theirs in memory.
    Returns the copy and the folder (None when nothing was in memory).
    """
    worker = {
        "tls_ca_file": "ca.pem",
        "tls_worker_cert": "worker-cert.pem",
        "tls_worker_key": "worker-key.pem",
    }
    pems = {f: getattr(security, f) for f in worker if "\n" in (getattr(security, f) or "")}
    if not pems:
        return security, None
    base = os.path.abspath(os.path.expanduser(os.path.expandvars(os.fspath(base or os.getcwd()))))
    try:
        folder = tempfile.mkdtemp(prefix=".nudask-tls-", dir=base)  # mode 0700
    except OSError as err:
        raise OutputError(
            f"cannot make the private folder for this run's TLS certificates in '{base}' ({err}): "
            "set shared-temp-directory (--cluster-option shared_temp_directory=DIR) to a folder the "
            "nodes can read"
        ) from None
    copy = copy_module.copy(security)
    for field, pem in pems.items():
        path = os.path.join(folder, worker[field])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        setattr(copy, field, path)
    return copy, folder


def _tls_settings(opts: dict[str, Any], **explicit: Any) -> dict[str, Any]:
    """Pop nudask's TLS keys out of profile options ``opts``; non-None ``explicit`` ones win."""
    settings = {k: opts.pop(k, None) for k in TLS_KEYS}
    settings.update({k: v for k, v in explicit.items() if v is not None})
    return settings


_CLASSES: dict[str, type] = {}


def _slurm_cluster_class() -> type:
    """SLURMCluster whose dashboard link names where the dashboard listens, and that
    removes the run's private certificate folder when it closes."""
    if "slurm" not in _CLASSES:
        from distributed.utils import format_dashboard_link

        # same name as its base: worker names stay "SLURMCluster-N"
        class SLURMCluster(import_jobqueue().SLURMCluster):  # type: ignore[misc, name-defined]
            _nudask_cleanup: weakref.finalize | None = None

            @property
            def dashboard_link(self) -> str:
                # dask-jobqueue names the scheduler's address, where the dashboard no longer listens
                hosts = [a[0] for a in _dashboard_sockets(self)]
                port = self.scheduler_info.get("services", {}).get("dashboard")
                if port and hosts and all(map(_is_loopback, hosts)):
                    return format_dashboard_link("127.0.0.1" if "127.0.0.1" in hosts else hosts[0], port)
                return super().dashboard_link

            async def _close(self) -> None:
                try:
                    await super()._close()
                finally:
                    if self._nudask_cleanup is not None:
                        self._nudask_cleanup()

        _CLASSES["slurm"] = SLURMCluster
    return _CLASSES["slurm"]


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

    Also nudask's own keys ``tls``, ``tls_cert``, ``tls_key``, ``tls_ca``
    (:data:`TLS_KEYS`), which :func:`slurm_cluster` and :func:`job_script` take out.

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
    profile: str = DEFAULT_PROFILE,
    *,
    profiles: str | os.PathLike | None = None,
    tls: bool | None = None,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
    tls_ca: str | os.PathLike | None = None,
    **overrides: Any,
) -> str:
    """The batch script a worker job of ``profile`` would be submitted with (a dry run).

    No scheduler is started and nothing is submitted; the scheduler address in
    the script is a placeholder, and so is the private certificate folder of a
    run with TLS and no certificate files (it is made when the cluster starts).
    """
    opts = profile_options(profile, profiles=profiles, **overrides)
    settings = _tls_settings(opts, tls=tls, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)
    security = None
    if any(settings[k] for k in TLS_KEYS[1:]):
        security = tls_security(**settings)
    elif _tls_flag(settings["tls"]):  # no certificate made for a dry run: placeholder paths
        base = os.path.expanduser(os.path.expandvars(opts.get("shared_temp_directory") or os.getcwd()))
        base = os.path.join(os.path.abspath(base), ".nudask-tls-XXXXXXXX")
        security = Security(
            require_encryption=True,
            tls_ca_file=f"{base}/ca.pem",
            tls_worker_cert=f"{base}/worker-cert.pem",
            tls_worker_key=f"{base}/worker-key.pem",
        )
    opts = {k: v for k, v in opts.items() if k not in _CLUSTER_ONLY}
    logs = opts.pop("log_directory", None)
    protocol = "tls" if security is not None else "tcp"
    # SLURMJob creates its log directory: give it a throwaway one (a dry run
    # writes nothing), then put the real one into the #SBATCH -o/-e lines
    with tempfile.TemporaryDirectory(prefix="nudask-dry-run-") as tmp:
        job = import_jobqueue().slurm.SLURMJob(
            scheduler=f"{protocol}://SCHEDULER-ADDRESS:8786",
            name="nudask-worker",
            config_name=profile,
            log_directory=tmp if logs else None,
            security=security,
            protocol="tls://" if security is not None else None,
            **opts,
        )
        script = job.job_script()
    return script.replace(f"{tmp}/", f"{logs}/") if logs else script


def slurm_cluster(
    profile: str = DEFAULT_PROFILE,
    *,
    jobs: int | None = None,
    profiles: str | os.PathLike | None = None,
    tls: bool | None = None,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
    tls_ca: str | os.PathLike | None = None,
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
    tls, tls_cert, tls_key, tls_ca
        TLS between scheduler, workers and client (see :func:`tls_security`);
        None: the profile's ``tls*`` keys. Without certificate files the run's
        temporary certificate is written into a private folder (``0700``, files
        ``0600``) under ``shared-temp-directory`` (default: the current folder),
        which the nodes must see; it is removed when the cluster closes.
    **overrides
        Any SLURMCluster option, e.g. ``walltime="08:00:00"``, ``queue="long"``.

    The scheduler listens on one address of this host (:func:`scheduler_options`),
    its dashboard on ``127.0.0.1:8787``; a line is printed for each beyond loopback.

    Returns
    -------
    SLURMCluster
        Use as a context manager, or ``close()`` it: that cancels its jobs.
    """
    opts = profile_options(profile, profiles=profiles, **overrides)
    settings = _tls_settings(opts, tls=tls, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)
    security = tls_security(**settings)
    options, why = scheduler_options(opts)
    opts["scheduler_options"] = options
    if opts.get("log_directory"):
        os.makedirs(opts["log_directory"], exist_ok=True)
    folder = None
    if security is not None:
        security, folder = _private_copy(security, opts.get("shared_temp_directory"))
    try:
        cluster = _slurm_cluster_class()(config_name=profile, security=security, **opts)
    except BaseException:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if folder:  # removed on close(), else when the cluster is collected or Python exits
        cluster._nudask_cleanup = weakref.finalize(cluster, shutil.rmtree, folder, True)
    _announce_exposure(cluster, why, tls=security is not None)
    _announce_workers(opts.get("interface"), tls=security is not None)
    if jobs:
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    return cluster
