"""Data parallel on the devices of one process (``train.devices``), with real logical CPU devices.

Each training runs in a fresh ``python -m nudask.train`` process: logical CPU devices (TensorFlow)
and the CPU device count (JAX) are set before the backend starts, once per process. Two devices
at batch 8 each (the job's learning rate scaled x 2, linear) must train like one device at batch
16 and twice the rate: the same loss every epoch and the same final weights, to float rounding
(the two replicas' gradients are summed in another order).
Dropout is off: its random draws are per replica.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_train_data import QUICK_JOB, microboone_dataset, quick_config

from nudask.train.distribute import port_base, scaled_learning_rate

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

# relative tolerance of losses and weights, one device against two: float32 sums in another order
RTOL = 1e-4


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


def train_process(data: str, runs: Path, backend: str, *settings: str) -> Path:
    """A run of the quick job in a fresh process; its run folder."""
    sets = [
        "split.validation=0",  # several replicas leave a partial last batch out: compare full ones
        "train.steps_per_epoch=3",
        "train.epochs=3",
        "model.dropout=0",
        "input.workers=1",
        f"output.runs={runs}",
        *settings,
    ]
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-m", "nudask.train", "--config", QUICK_JOB, "--data", data, "--no-evaluate"]
        + [a for s in sets for a in ("--set", s)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [p for p in (runs / "quick").iterdir() if p.is_dir()]
    return run


def weights(run: Path) -> dict[str, np.ndarray]:
    """The final weights, by their path in the saved model (read without a backend)."""
    with (
        zipfile.ZipFile(run / "model_last.keras") as z,
        h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f,
    ):
        out: dict[str, np.ndarray] = {}
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


def learning_rate(run: Path) -> float:
    with zipfile.ZipFile(run / "model_last.keras") as z:
        return json.loads(z.read("config.json"))["compile_config"]["optimizer"]["config"]["learning_rate"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "densify"),
    [("tensorflow", "host"), pytest.param("jax", "device", marks=pytest.mark.long)],  # jax: make test-jax
    ids=["tensorflow", "jax-densify"],
)
def test_two_devices_train_like_one_at_the_same_global_batch(mb, tmp_path, backend, densify):
    # the job's rate 0.002 x 2 replicas (train.learning_rate_scaling: linear) is one device's 0.004
    extra = [f"input.densify={densify}", "input.device_capacity=1024"]
    one = train_process(
        mb, tmp_path / "one", backend, "input.batch_size=16", "train.learning_rate=0.004", *extra
    )
    two = train_process(mb, tmp_path / "two", backend, "input.batch_size=8", "train.devices=2", *extra)
    assert learning_rate(two) == pytest.approx(0.004)
    env = json.loads((two / "environment.json").read_text())["placement"]
    assert env["replicas"] == 2 and len(env["devices"]) == 2 and env["workers"] == 1
    assert env["strategy"] == ("MirroredStrategy" if backend == "tensorflow" else None)
    assert json.loads((one / "environment.json").read_text())["placement"]["replicas"] == 1
    h1, h2 = (json.loads((r / "history.json").read_text()) for r in (one, two))
    loss1, loss2 = [h["loss"] for h in h1], [h["loss"] for h in h2]
    assert len(loss1) == len(loss2) == 3 and loss1[0] != loss1[-1]  # it trained
    np.testing.assert_allclose(loss2, loss1, rtol=RTOL)
    w1, w2 = weights(one), weights(two)
    assert sorted(w1) == sorted(w2) and len(w1) > 4
    for name, a in w1.items():
        if name.startswith("layers/"):  # the model's weights; the optimizer's moments are not compared
            np.testing.assert_allclose(
                w2[name], a, rtol=RTOL, atol=RTOL * float(np.abs(a).max()), err_msg=name
            )


def test_the_learning_rate_rules_and_ports():
    assert scaled_learning_rate(0.01, 8, "linear") == pytest.approx(0.08)
    assert scaled_learning_rate(0.01, 4, "sqrt") == pytest.approx(0.02)
    assert scaled_learning_rate(0.01, 8, "none") == 0.01
    assert port_base("5") != port_base("6") and 20000 <= port_base("99999") < 52000


def test_devices_must_be_all_or_a_count():
    from nudask.errors import ConfigError
    from nudask.train.config import make_config

    assert make_config({"train": {"devices": 2}}).train.devices == "2"
    assert make_config({"train": {"devices": "all"}}).train.devices == "all"
    with pytest.raises(ConfigError, match="train.devices must be all or a positive integer"):
        make_config({"train": {"devices": "two"}})
    with pytest.raises(ConfigError, match="learning_rate_scaling"):
        make_config({"train": {"learning_rate_scaling": "cubic"}})


def test_a_multi_worker_run_outside_srun_is_refused(mb, tmp_path, monkeypatch):
    from nudask.errors import ConfigError
    from nudask.train.fit import train

    for k in ("SLURM_PROCID", "SLURM_STEP_NODELIST"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="srun"):
        train(quick_config(mb, tmp_path, train={"cluster": "slurm"}))
    assert not (tmp_path / "runs").exists()  # refused before any folder is made


def test_a_resume_keeps_the_runs_global_batch_and_rate_on_any_replicas_that_share_it(tmp_path):
    from nudask.errors import ConfigError
    from nudask.train.config import make_config
    from nudask.train.distribute import Placement
    from nudask.train.fit import Schedule

    cfg = make_config({"input": {"batch_size": 8}, "train": {"learning_rate": 0.002}})
    cpu = ["/device:CPU:0"]
    two = Placement("tensorflow", cpu * 2)
    new = Schedule.new(cfg, two)
    assert (new.global_batch, new.replicas, new.learning_rate(cfg)) == (16, 2, pytest.approx(0.004))
    (tmp_path / "environment.json").write_text(json.dumps({"placement": {"replicas": 1}}))  # rewritten
    state = new.record()
    for placement in (Placement("tensorflow", cpu), Placement("tensorflow", cpu, rank=1, workers=4)):
        assert Schedule.of_run(tmp_path, state, cfg, placement) == new  # 16 events, the rate for 2
    with pytest.raises(ConfigError, match="global batches of 16 events, which 3 replicas cannot share"):
        Schedule.of_run(tmp_path, state, cfg, Placement("tensorflow", cpu * 3))
    # a run from before the state kept it: its environment.json's replicas
    (tmp_path / "environment.json").write_text(json.dumps({"placement": {"replicas": 2}}))
    assert Schedule.of_run(tmp_path, {}, cfg, Placement("tensorflow", cpu)) == new
    (tmp_path / "environment.json").write_text(json.dumps({"keras_backend": "tensorflow"}))  # older still
    assert Schedule.of_run(tmp_path, {}, cfg, Placement("tensorflow", cpu)) == Schedule(8, 1)
    assert new.drop_remainder(Placement("tensorflow", cpu))  # started on 2: full batches still
    assert not Schedule(8, 1).drop_remainder(Placement("tensorflow", cpu))


def test_a_failed_collective_names_the_silent_rank():
    from nudask.train.distribute import Placement

    def said(rank: int, workers: int, message: str) -> str:
        return str(
            Placement("tensorflow", ["/device:CPU:0"], rank=rank, workers=workers).failure(OSError(message))
        )

    own = "Task /job:worker/replica:0/task:0 heartbeat timeout"  # TensorFlow names the task in error too
    assert said(0, 2, own).startswith("worker rank 0 of 2: worker rank 1 stopped answering (OSError)")
    assert "worker rank 3 stopped" in said(0, 4, own + " from /job:worker/replica:0/task:3")
    assert "another worker stopped" in said(0, 4, own)
    assert "--resume" in said(1, 2, "")
