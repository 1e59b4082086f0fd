"""Where a training runs: the devices of this process (``train.devices``), the workers of a
multi-node job (``train.cluster``), who is chief, and the learning rate on all of them.

Data parallel throughout: every replica (a device of a worker) holds the whole model and
trains on its part of each global batch of ``input.batch_size`` x replicas events; the
gradients are averaged across replicas every step.

- TensorFlow: ``tf.distribute.MirroredStrategy`` over the devices of one process, or
  ``MultiWorkerMirroredStrategy`` over the tasks of an ``srun`` step (its SLURM cluster
  resolver; worker ports from the job id, :func:`port_base`).
- JAX: ``keras.distribution.DataParallel`` over the devices of one process.

:func:`place` must run before the backend starts its runtime (logical CPU devices, the
multi-worker server): :mod:`~nudask.train.fit` calls it first.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import keras

from ..errors import ConfigError, TrainingError

PORT_ENV = "NUDASK_TRAIN_PORT"


@dataclass
class Placement:
    """The replicas of a training: this worker's devices, its rank among ``workers``."""

    backend: str
    devices: list[str]
    rank: int = 0
    workers: int = 1
    strategy: Any = None  # a tf.distribute strategy, None for the backend's default
    hosts: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return len(self.devices) * self.workers

    @property
    def chief(self) -> bool:
        """Rank 0 writes the run folder and checkpoints; the others only train."""
        return self.rank == 0

    def scope(self):
        """The context the model is built, compiled and loaded in."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def global_batch(self, batch_size: int) -> int:
        return batch_size * self.replicas

    def record(self) -> dict:
        """What environment.json keeps of the placement."""
        return {
            "backend": self.backend,
            # tf.distribute.MultiWorkerMirroredStrategy is an alias of CollectiveAllReduceStrategy
            "strategy": (
                "MultiWorkerMirroredStrategy"
                if self.multi_worker
                else type(self.strategy).__name__
                if self.strategy is not None
                else None
            ),
            "devices": self.devices,
            "replicas": self.replicas,
            "workers": self.workers,
            "rank": self.rank,
            "hosts": self.hosts,
        }

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1

    def feed(self, stream):
        """What ``model.fit`` is given for ``stream`` (a KerasStream): itself, or on several workers
        an adapter handing each worker's shard to its replicas as it is (TensorFlow would take
        each worker's batches for global ones and split them again)."""
        return _worker_shard(stream, self.strategy, len(self.devices)) if self.multi_worker else stream

    def prepare(self, model):
        """``model`` made ready for :meth:`feed`'s input: on several workers, Keras' first build
        (before the first step) looks at a local batch instead of reducing one across workers,
        which MultiWorkerMirroredStrategy cannot do for a dict of inputs (only shapes matter)."""
        if self.multi_worker:
            model._maybe_symbolic_build = _local_build(model, self.strategy)
            _mean_logs_across_workers()
        return model

    def failure(self, err: BaseException) -> TrainingError:
        """A collective that failed (a worker died or hangs) as a one-line error naming the ranks."""
        who = f"worker rank {peer}" if (peer := self._peer(err)) is not None else "another worker"
        return TrainingError(
            f"worker rank {self.rank} of {self.workers}: {who} stopped answering "
            f"({type(err).__name__}); the job fails rather than wait for the walltime: check that "
            f"rank's log (srun names a task that died), then --resume the run"
        )

    def _peer(self, err: BaseException) -> int | None:
        """The rank the error is about: the one other rank it names (TensorFlow's messages name
        this task too, as the one in error), or with two workers the other one."""
        named = {int(t) for t in re.findall(r"/job:worker/replica:\d+/task:(\d+)", str(err))}
        others = named - {self.rank}
        if len(others) == 1:
            return others.pop()
        return 1 - self.rank if self.workers == 2 else None


def _local_build(model, strategy):
    import tensorflow as tf
    from keras.src import tree

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda v: (
                        strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    batch,
                )
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    return build


def _mean_logs_across_workers() -> None:
    """Keras averages a step's logs across workers with ``reduce(MEAN, axis=0)``, which fails on
    the scalar losses and metrics; the mean over replicas (``axis=None``) is what it means."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    keras_reduce = getattr(trainer.reduce_per_replica, "keras_reduce", trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean"):
            return keras_reduce(values, strategy, reduction)
        return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    reduce_per_replica.keras_reduce = keras_reduce  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def _worker_shard_class():
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    class WorkerShard(PyDatasetAdapter):
        """A worker's stream, already its rank's shard: split only among its own devices."""

        def __init__(self, stream, strategy, local_devices: int):
            super().__init__(stream, shuffle=False)
            self.strategy, self.local_devices = strategy, local_devices
            self.per_replica = stream.source.local_batch // local_devices

        def get_tf_dataset(self):
            ds = super().get_tf_dataset()
            if self.local_devices > 1:
                ds = ds.rebatch(self.per_replica)
            return self.strategy.distribute_datasets_from_function(lambda context: ds)

    return WorkerShard


def _worker_shard(stream, strategy, local_devices: int):
    return _worker_shard_class()(stream, strategy, local_devices)


def scaled_learning_rate(learning_rate: float, replicas: int, rule: str) -> float:
    """``train.learning_rate`` on ``replicas`` replicas by ``train.learning_rate_scaling``.

    >>> scaled_learning_rate(1e-3, 4, "linear"), scaled_learning_rate(1e-3, 4, "sqrt")
    (0.004, 0.002)
    >>> scaled_learning_rate(1e-3, 4, "none")
    0.001
    """
    factor = {"linear": replicas, "sqrt": math.sqrt(replicas), "none": 1}[rule]
    return learning_rate * factor


def _count(devices: str, available: int, what: str) -> int:
    if devices == "all":
        return available
    n = int(devices)
    if n > available:
        raise ConfigError(f"train.devices: {n}, but this host has {available} {what}: ask for at most that")
    return n


def port_base(job_id: str | None) -> int:
    """The first port of this job's workers (one per task of a node, counting up): from
    ``NUDASK_TRAIN_PORT``, else 20000 + 16 x (job id mod 2000), so two jobs sharing a node
    rarely meet.

    >>> port_base("123")
    21968
    """
    if os.environ.get(PORT_ENV):
        return int(os.environ[PORT_ENV])
    return 20000 + 16 * (int(job_id or 0) % 2000)


def _tf_local(devices: str) -> tuple[list[str], Any]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = _count(devices, len(gpus), "GPUs")
        with contextlib.suppress(RuntimeError):  # already set by an earlier run in this process
            tf.config.set_visible_devices(gpus[:n], "GPU")
        names = [d.name for d in tf.config.list_logical_devices("GPU")][:n]
    else:
        n = 1 if devices == "all" else int(devices)
        if n > 1:  # logical CPU devices: data parallel on one CPU (tests, measurements)
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError:
                pass  # the runtime started already: use the devices it has, if enough
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        if len(names) < n:
            raise ConfigError(
                f"train.devices: {n} logical CPU devices are asked for after TensorFlow started with "
                f"{len(names)}: run the training in a fresh process (python -m nudask.train)"
            )
    strategy = tf.distribute.MirroredStrategy(names) if len(names) > 1 else None
    return names, strategy


def _tf_workers(devices: str, timeout: float) -> Placement:
    import tensorflow as tf

    if "SLURM_PROCID" not in os.environ or "SLURM_STEP_NODELIST" not in os.environ:
        raise ConfigError(
            "train.cluster: slurm runs one worker per task of an srun step (SLURM_PROCID is not set): "
            "start it with srun, e.g. sbatch deploy/sbatch/train-multinode.sbatch"
        )
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and devices not in ("1", "all"):
        raise ConfigError(
            f"train.devices: {devices} with train.cluster: slurm: a worker on a CPU-only node has one device"
        )
    if gpus:
        n = _count(devices, len(gpus), "GPUs")
        tf.config.set_visible_devices(gpus[:n], "GPU")
    # the resolver hands out GPUs per task and lists a task only if it got one: give every task
    # a nominal one and let it keep its node's devices (auto_set_gpu off, train.devices above)
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port_base(os.environ.get("SLURM_JOB_ID")),
        gpus_per_node=1024,
        gpus_per_task=1,
        auto_set_gpu=False,
    )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver, communication_options=options
    )
    workers = resolver.cluster_spec().as_dict()["worker"]
    local = strategy.extended.worker_devices
    return Placement(
        "tensorflow",
        [str(d) for d in local],
        rank=int(resolver.task_id),
        workers=len(workers),
        strategy=strategy,
        hosts=list(workers),
    )


def _jax_local(devices: str) -> tuple[list[str], Any]:
    import jax

    if devices not in ("1", "all"):
        with contextlib.suppress(RuntimeError):  # only before JAX starts; only the CPU platform
            jax.config.update("jax_num_cpu_devices", int(devices))
    found = jax.devices()
    n = _count(devices, len(found), f"{found[0].platform.upper()} devices")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=found[:n]) if n > 1 else None)
    return [str(d) for d in found[:n]], None


def place(train) -> Placement:
    """This process's place in the training of config section ``train``."""
    backend = keras.backend.backend()
    if train.cluster == "slurm":
        if backend != "tensorflow":
            raise ConfigError(
                f"train.cluster: slurm needs the TensorFlow backend (KERAS_BACKEND={backend}): "
                "multi-node training here is MultiWorkerMirroredStrategy"
            )
        return _tf_workers(train.devices, train.worker_timeout)
    if backend == "tensorflow":
        names, strategy = _tf_local(train.devices)
        return Placement(backend, names, strategy=strategy)
    if backend == "jax":
        names, _ = _jax_local(train.devices)
        return Placement(backend, names)
    if train.devices != "1":
        raise ConfigError(
            f"train.devices: {train.devices} needs KERAS_BACKEND tensorflow or jax, not {backend}"
        )
    return Placement(backend, ["cpu"])
