"""Hyperparameter search with Optuna, each trial a nudask training run run as a Dask task.

A job file for ``python -m nudask.tune`` is a training job plus a ``tune`` section::

    tune:
      trials: 12                  # trials the study should hold (complete or pruned)
      metric: val_loss            # per-epoch metric to optimise (default: train.monitor / val_loss)
      direction: minimize         # or maximize (default: maximize for auc/accuracy, else minimize)
      pruner: median              # median (Optuna's MedianPruner) or none
      startup_trials: 2           # trials never pruned, and epochs before pruning starts
      seed: 0                     # of the TPE sampler
      space:
        train.learning_rate: log-uniform 1e-4..1e-2
        model.dropout: uniform 0.0..0.5
        model.dense: int 16..128
        model.filters: [[8, 16], [16, 32]]     # a list: a choice

The study lives in a folder: ``study.db`` (Optuna's RDB storage in an SQLite
file: a killed study resumes from it), ``trials/trial_NNNN/<stamp>/`` (each trial's run
folder), and the summary page ``index.html`` / ``summary.md`` with the best
trial and its config, the table of trials and Optuna's matplotlib plots
(optimisation history, parameter importances, parallel coordinates).

Trials are submitted to the current Dask client, one at a time per worker (a
LocalCluster, or SLURM GPU workers); the search loop is Optuna's ask-and-tell.
Each trial reports its metric every epoch to the same storage, and stops when
the pruner says so.

A killed study: the driver records a heartbeat for each trial it has running
(every ``tune.heartbeat`` seconds, default 10; Optuna's RDB heartbeat). A
rerun fails the trials whose heartbeat is older than three intervals (Optuna's
``fail_stale_trials``) and runs each again once with the same parameters as a
new trial (``RetryHeartbeatStaleTrialCallback``); finished trials are kept. A
trial killed between its ask and its first heartbeat has none, so the rerun
records one for every running trial it finds, once: it goes stale in turn.
Trials of another driver still running on the same study keep their heartbeat
and count toward ``tune.trials``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..cluster import keep_to_worker_threads
from ..errors import ConfigError, TrainingError

_RANGE = re.compile(r"^\s*(log-uniform|loguniform|uniform|int|log-int)\s+(\S+?)\s*\.\.\s*(\S+)\s*$")
MAXIMIZE = ("auc", "accuracy", "precision", "recall", "f1")


def load_job(path: str | os.PathLike) -> tuple[dict, dict]:
    """The training values and the ``tune`` section of a job file (YAML or JSON)."""
    from .config import load_file

    values = load_file(path)
    tune = values.pop("tune", None)
    if not isinstance(tune, dict) or not tune.get("space"):
        raise ConfigError(
            f"config file '{path}' has no tune.space: declare the search space (see nudask.tune)"
        )
    known = {"trials", "metric", "direction", "pruner", "startup_trials", "seed", "space", "evaluate",
             "heartbeat", "worker_wait"}  # fmt: skip
    unknown = sorted(set(tune) - known)
    if unknown:
        raise ConfigError(
            f"config file '{path}': unknown tune keys {unknown}; known: {', '.join(sorted(known))}"
        )
    return values, tune


def distribution(key: str, spec: Any):
    """An Optuna distribution from ``log-uniform A..B``, ``uniform A..B``, ``int A..B`` or a list.

    >>> distribution("train.learning_rate", "log-uniform 1e-4..1e-2")
    FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
    >>> distribution("model.dense", "int 16..64").high
    64
    """
    import optuna.distributions as d

    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"tune.space.{key}: an empty choice")
        return d.CategoricalDistribution([json.dumps(v) for v in spec])  # lists as JSON text
    m = _RANGE.match(str(spec))
    if not m:
        raise ConfigError(
            f"tune.space.{key}: {spec!r} is not 'log-uniform A..B', 'uniform A..B', 'int A..B' or a list"
        )
    kind, lo, hi = m.groups()
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"tune.space.{key}: bounds {lo!r}..{hi!r} are not numbers") from None
    if not a < b or (kind.startswith("log") and a <= 0):
        raise ConfigError(f"tune.space.{key}: need 0 < A < B for log ranges and A < B, got {spec!r}")
    if kind in ("int", "log-int"):
        return d.IntDistribution(int(a), int(b), log=kind == "log-int")
    return d.FloatDistribution(a, b, log=kind.startswith("log"))


def space_of(tune: dict, base: dict) -> dict:
    """Key -> distribution; each key is checked against the training config first."""
    from .config import make_config

    out = {}
    for key, spec in tune["space"].items():
        dist = distribution(key, spec)
        sample = json.loads(dist.choices[0]) if hasattr(dist, "choices") else dist.low
        make_config(base, [(key, sample)])  # an unknown key or a wrong type fails now
        out[key] = dist
    return out


def overrides_of(params: dict) -> list[tuple[str, Any]]:
    return [(k, json.loads(v) if isinstance(v, str) else v) for k, v in params.items()]


def _direction(tune: dict, metric: str) -> str:
    d = tune.get("direction") or ("maximize" if any(w in metric for w in MAXIMIZE) else "minimize")
    if d not in ("minimize", "maximize"):
        raise ConfigError(f"tune.direction: {d!r} is not minimize or maximize")
    return d


def storage_url(study: Path) -> str:
    return f"sqlite:///{(study / 'study.db').resolve()}"


def _storage(url: str, heartbeat: int | None = None):
    """The study's RDB storage; with ``heartbeat`` (seconds) stale trials are failed and retried once."""
    import warnings

    import optuna

    if heartbeat is None:
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    with warnings.catch_warnings():  # heartbeat_interval is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": 60}}, heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )  # fmt: skip


def _heartbeat_of(tune: dict) -> int:
    v = tune.get("heartbeat", 10)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"tune.heartbeat: {v!r} is not a positive whole number of seconds")
    return v


def _worker_wait_of(tune: dict) -> float | None:
    v = tune.get("worker_wait", 600)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
        raise ConfigError(f"tune.worker_wait: {v!r} is not a positive number of seconds (or null: forever)")
    return v


class _Heartbeat:
    """Records Optuna heartbeats for the trials this driver has running, from one thread."""

    def __init__(self, storage, interval: int) -> None:
        import threading

        self.storage, self.interval = storage, interval
        self.trials: set[int] = set()
        self.adopted: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="nudask-tune-heartbeat", daemon=True)

    def add(self, trial_id: int) -> None:
        with self.lock:
            self.trials.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def adopt(self, trial_id: int) -> None:
        """One heartbeat, once, for a trial another driver has running: one killed between its
        ask and its first beat has none, and Optuna only fails trials whose heartbeat went stale."""
        if trial_id not in self.adopted:  # the driver's thread only, unlike ``trials``
            self.adopted.add(trial_id)
            self.storage.record_heartbeat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trials.discard(trial_id)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = sorted(self.trials)
            for tid in ids:
                try:
                    self.storage.record_heartbeat(tid)
                except Exception:  # a busy database: the next beat tries again
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def _where() -> str:
    """Where a trial ran: its SLURM job and host, or the host alone."""
    import socket

    job = os.environ.get("SLURM_JOB_ID")
    return f"slurm job {job} on {socket.gethostname()}" if job else socket.gethostname()


def _check_workers_back(seen: bool, workers: set, since: float | None, wait: float | None, done: int,
                        n_trials: int, folder: Path) -> float | None:  # fmt: skip
    """When the last worker left (None while there are some); refuses to wait past ``wait``."""
    if not seen or workers:
        return None
    now = time.monotonic()
    since = since if since is not None else now
    if wait is not None and now - since > wait:
        raise TrainingError(
            f"nudask.tune: every Dask worker left and none came back for {wait:g} s (tune.worker_wait), "
            f"with {done} of {n_trials} trials finished, all saved in '{folder}': run the same command "
            "again, with workers, to go on"
        )
    return since


def run_trial(values: dict, params: dict, study_dir: str, url: str, study_name: str, trial_id: int,
              number: int, metric: str) -> dict:  # fmt: skip
    """One trial, on a Dask worker: a normal training run, reporting ``metric`` every epoch."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import optuna

    from .config import make_config
    from .fit import train

    keep_to_worker_threads()
    values = dict(values)
    evaluate = bool(values.pop("_evaluate", False))
    cfg = make_config(
        values,
        [*overrides_of(params), ("output.runs", os.path.join(study_dir, "trials")),
         ("output.name", f"trial_{number:04d}")],
    )  # fmt: skip
    study = optuna.load_study(study_name=study_name, storage=_storage(url))
    trial = optuna.trial.Trial(study, trial_id)
    seen: dict = {"values": [], "pruned": False}

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None:
                raise ConfigError(f"tune.metric: '{metric}' is not logged; the run logs {sorted(logs or {})}")
            seen["values"].append(float(value))
            trial.report(float(value), epoch)
            if trial.should_prune():
                seen["pruned"] = True
                self.model.stop_training = True

    start = time.perf_counter()
    run = train(cfg, evaluate=evaluate, callbacks=[Report()])
    best = (max if study.direction.name == "MAXIMIZE" else min)(seen["values"])
    trial.set_user_attr("run", str(run))
    trial.set_user_attr("seconds", time.perf_counter() - start)
    trial.set_user_attr("where", _where())
    return {"value": best, "pruned": seen["pruned"], "run": str(run), "epochs": len(seen["values"])}


def tune(job: str | os.PathLike, study: str | os.PathLike, *, data: str | None = None,
         overrides: Sequence[tuple[str, Any]] = (), trials: int | None = None, client=None,
         verbose: bool = True) -> dict:  # fmt: skip
    """Run (or resume) the study of job file ``job`` in folder ``study``; returns its summary."""
    import optuna
    from distributed import wait

    from ..cluster import client_or_local
    from .config import apply_overrides, make_config

    base, section = load_job(job)
    base = apply_overrides(base, [*overrides, *([("data", data)] if data else [])])
    cfg = make_config(base)
    if not cfg.data:
        raise ConfigError("no dataset: pass --data PATH or set data: in the job file")
    base["data"] = os.path.abspath(cfg.data)
    base["_evaluate"] = bool(section.get("evaluate", False))
    space = space_of(section, {k: v for k, v in base.items() if k != "_evaluate"})
    metric = (
        section.get("metric") or cfg.train.monitor or ("val_loss" if cfg.split.validation > 0 else "loss")
    )
    n_trials = int(trials or section.get("trials", 10))
    folder = Path(study)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url(folder)
    startup = int(section.get("startup_trials", 2))
    pruner_name = section.get("pruner", "median")
    if pruner_name not in ("median", "none"):
        raise ConfigError(f"tune.pruner: {pruner_name!r} is not median or none")
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=1)
        if pruner_name == "median"
        else optuna.pruners.NopPruner()
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    heartbeat = _heartbeat_of(section)
    worker_wait = _worker_wait_of(section)
    storage = _storage(url, heartbeat)
    st = optuna.create_study(
        study_name=folder.resolve().name, storage=storage, direction=_direction(section, metric),  # type: ignore[arg-type]
        sampler=optuna.samplers.TPESampler(seed=int(section.get("seed", 0)), n_startup_trials=startup),
        pruner=pruner, load_if_exists=True,
    )  # fmt: skip
    (folder / "job.yaml").write_text(yaml.safe_dump({**{k: v for k, v in base.items() if k != "_evaluate"},
                                                     "tune": section}, sort_keys=False))  # fmt: skip
    values = {k: v for k, v in base.items()}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    RUNNING = optuna.trial.TrialState.RUNNING

    def done() -> int:
        return len(st.get_trials(deepcopy=False, states=finished))

    with client_or_local(client, verbose=verbose) as c, _Heartbeat(storage, heartbeat) as beats:
        local = not c.scheduler_info(n_workers=-1)["workers"]  # none yet: a worker-less client
        known: set = set()
        free: list = [None] if local else []
        running: dict[Any, tuple[Any, Any, Any]] = {}  # key: (future, trial, worker)
        # trials running elsewhere count toward n_trials until their heartbeat goes stale
        seen = False  # a worker was ever there (before the first, SLURM jobs may be queued)
        gone_since: float | None = None  # when the last worker left

        def elsewhere() -> list:
            ours = {t._trial_id for _, t, _ in running.values()}
            return [t for t in st.get_trials(deepcopy=False, states=(RUNNING,)) if t._trial_id not in ours]

        def finish(trial, state=None, value=None) -> None:
            beats.discard(trial._trial_id)
            st.tell(trial, value, state=state)

        def workers_now() -> None:
            """Workers that joined (SLURM jobs start when they start) are used; lost ones dropped."""
            if local:
                return
            nonlocal seen
            now = set(c.scheduler_info(n_workers=-1)["workers"])
            seen = seen or bool(now)
            free.extend(sorted(now - known))
            known.clear()
            known.update(now)
            free[:] = [w for w in free if w in now]
            for key, (fut, trial, where) in list(running.items()):
                if where not in now:  # its worker is gone: the trial cannot finish there
                    running.pop(key)
                    fut.cancel()
                    finish(trial, optuna.trial.TrialState.FAIL)
                    if verbose:
                        print(f"nudask.tune: trial {trial.number} failed: worker {where} left", flush=True)

        def submit() -> None:
            import warnings

            workers_now()
            with warnings.catch_warnings():  # experimental; "heartbeat is for optimize": we beat ourselves
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(st)  # a killed study's running trials: failed, retried once
            others = elsewhere()  # the trials asked below are ours: they do not change it
            for trial in others:
                beats.adopt(trial._trial_id)  # so that it goes stale too, should its driver be gone
            while free and done() + len(running) + len(others) < n_trials:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                    trial = st.ask(space)
                beats.add(trial._trial_id)
                where = free.pop(0)
                fut = c.submit(
                    run_trial, values, trial.params, str(folder.resolve()), url, st.study_name,
                    trial._trial_id, trial.number, metric, key=f"trial-{trial.number:04d}-{time.time_ns()}",
                    workers=[where] if where else None, allow_other_workers=False, pure=False,
                )  # fmt: skip
                running[fut.key] = (fut, trial, where)
                if verbose:
                    retry = st._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
                    again = f" (trial {retry} again)" if retry is not None else ""
                    print(f"nudask.tune: trial {trial.number}{again} on {where}: {trial.params}", flush=True)

        submit()
        while running or (done() < n_trials and (elsewhere() or not free)):
            if not running:  # waiting for workers, or on trials elsewhere (retried if theirs is gone)
                gone_since = _check_workers_back(
                    seen, known, gone_since, worker_wait, done(), n_trials, folder
                )
                time.sleep(heartbeat)
                submit()
                continue
            gone_since = None
            try:
                ended = wait(
                    [f for f, _, _ in running.values()], timeout=heartbeat, return_when="FIRST_COMPLETED"
                )
            except TimeoutError:
                submit()  # new workers, lost ones
                continue
            for fut in ended.done:
                _, trial, where = running.pop(fut.key)
                free.append(where)
                try:
                    res = fut.result()
                except Exception as err:  # a failed trial is recorded, the study goes on
                    finish(trial, optuna.trial.TrialState.FAIL)
                    if verbose:
                        print(
                            f"nudask.tune: trial {trial.number} failed: {type(err).__name__}: {err}",
                            flush=True,
                        )
                    if isinstance(err, ConfigError):
                        raise
                    continue
                if res["pruned"]:
                    finish(trial, optuna.trial.TrialState.PRUNED)
                else:
                    finish(trial, value=res["value"])
                if verbose:
                    state = "pruned" if res["pruned"] else f"{metric} {res['value']:.4g}"
                    print(
                        f"nudask.tune: trial {trial.number} {state} after {res['epochs']} epochs", flush=True
                    )
            submit()
    from .tune_report import write_study_summary

    return write_study_summary(st, folder, metric, values)
