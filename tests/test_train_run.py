"""Training for real (Keras, tiny simulated datasets): run folder, reports, resume, NaN loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_train_data import QUICK_JOB, microboone_dataset, nova_dataset, quick_config

pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

import keras  # noqa: E402

from nudask.evaluate import main as evaluate_main  # noqa: E402
from nudask.train.fit import resume, train  # noqa: E402
from nudask.train.stream import BatchSource  # noqa: E402

PROVENANCE = [
    "config.yaml",
    "command.txt",
    "environment.json",
    "dataset.json",
    "history.json",
    "history.csv",
    "model_best.keras",
    "model_last.keras",
    "metrics.json",
    "predictions.csv",
    "summary.md",
    "index.html",
    "checkpoints/state.json",
]
CLASSIFICATION_PLOTS = [
    "loss",
    "metrics",
    "confusion",
    "roc",
    "scores",
    "accuracy_vs_energy",
    "accuracy_by_category",
    "events",
]
REGRESSION_PLOTS = [
    "loss",
    "metrics",
    "pred_vs_true",
    "residuals",
    "resolution_vs_energy",
    "resolution_by_category",
    "events",
]


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    return nova_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def quick_run(mb, tmp_path_factory):
    cfg = quick_config(mb, tmp_path_factory.mktemp("quick"))
    return train(cfg, config_path=QUICK_JOB, argv=["pytest"])


def assert_png(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"), float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, path
    assert pixels.std() > 5, f"{path} looks blank"


def assert_report(run, plots):
    for name in PROVENANCE:
        assert (run / name).is_file(), name
    for name in plots:
        assert_png(run / "plots" / f"{name}.png")
    summary, page = (run / "summary.md").read_text(), (run / "index.html").read_text()
    for name in plots:
        assert f"plots/{name}.png" in summary and f'src="plots/{name}.png"' in page
    for name in ("config.yaml", "model_best.keras", "metrics.json", "predictions.csv"):
        assert f"]({name})" in summary and f'href="{name}"' in page


def test_run_folder_holds_every_report_file(quick_run):
    run = quick_run
    assert run.parent.name == "quick" and len(run.name) == len("20261122_143022")
    assert_report(run, CLASSIFICATION_PLOTS)
    env = json.loads((run / "environment.json").read_text())
    assert env["keras_backend"] and env["libraries"]["keras"] and env["nudask"]
    dataset = json.loads((run / "dataset.json").read_text())
    assert len(dataset["manifest_sha256"]) == 64 and dataset["task"]["classes"] == ["rest", "nue CC"]
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"loss", "val_loss", "accuracy", "val_auc"} <= set(history[0])
    assert len(pd.read_csv(run / "history.csv")) == 2
    metrics = json.loads((run / "metrics.json").read_text())
    o = metrics["overall"]
    for key in ("accuracy", "accuracy_balanced", "precision", "recall", "f1", "roc_auc"):
        assert 0 <= o[key] <= 1, key
    assert set(metrics["by_category"]) <= {"numu_cc", "nue_cc", "nc"} and metrics["vs_energy"]
    assert metrics["dataset_matches_run"] is True
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == o["events"] == sum(map(sum, o["confusion"]))
    assert {"run", "subrun", "event", "category", "energy", "label", "score"} <= set(pred.columns)
    assert "pytest" in (run / "command.txt").read_text()


def test_evaluate_command_rewrites_the_report(quick_run, capsys):
    (quick_run / "metrics.json").unlink()
    (quick_run / "plots" / "roc.png").unlink()
    assert evaluate_main([str(quick_run), "--model", "last", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert '"accuracy"' in out and "index.html" in out
    assert json.loads((quick_run / "metrics.json").read_text())["model"] == "model_last.keras"
    assert_png(quick_run / "plots" / "roc.png")


def test_python_m_nudask_evaluate(quick_run):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "nudask.evaluate", str(quick_run), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "roc_auc" in done.stdout


ORIGINAL_BATCH = BatchSource.batch


class Recorder(keras.callbacks.Callback):
    """Rows of every training batch made, with the epoch Keras was in when it was made."""

    def __init__(self, monkeypatch, stop_after=None):
        super().__init__()
        self.epoch, self.calls, self.stop_after = None, [], stop_after

        def batch(src, i):
            if src.shuffle:
                self.calls.append((self.epoch, src.epoch, i, src.batch_rows(i).tolist()))
            return ORIGINAL_BATCH(src, i)

        monkeypatch.setattr(BatchSource, "batch", batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_after is not None and epoch + 1 == self.stop_after:
            self.weights = [w.copy() for w in self.model.get_weights()]
            raise KeyboardInterrupt("killed")

    def order(self, epoch):
        made = {i: rows for e, src_epoch, i, rows in self.calls if e == epoch}
        return [made[i] for i in sorted(made)]


def test_resume_continues_with_the_same_weights_and_data_order(mb, tmp_path, monkeypatch):
    cfg = quick_config(mb, tmp_path, train={"epochs": 3}, report={"event_displays": 0})
    whole = Recorder(monkeypatch)
    train(cfg, evaluate=False, callbacks=[whole])
    # every batch was made for the epoch Keras was in (the order is set before fetching starts)
    assert all(e == src_epoch for e, src_epoch, _, _ in whole.calls if e is not None)

    killed = Recorder(monkeypatch, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, evaluate=False, callbacks=[killed])
    run = max((tmp_path / "runs" / "nue_cc").iterdir(), key=lambda p: p.stat().st_mtime)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and state["checkpoint"] == "epoch_0002.keras"
    saved = keras.models.load_model(run / "checkpoints" / "epoch_0002.keras")
    for a, b in zip(saved.get_weights(), killed.weights):
        np.testing.assert_array_equal(a, b)

    after = Recorder(monkeypatch)
    assert resume(run, callbacks=[after]) == run
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len(pd.read_csv(run / "history.csv")) == 3
    assert killed.order(0) == whole.order(0) and killed.order(1) == whole.order(1)
    assert after.order(2) == whole.order(2) and after.order(2)  # the data order goes on unchanged
    assert not after.order(0) and not after.order(1)  # nothing trained twice
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epoch"] == 3
    assert (run / "metrics.json").exists()
    assert resume(run) == run  # a finished run: nothing to do
    assert len(json.loads((run / "history.json").read_text())) == 3


def test_resume_refuses_changed_settings(quick_run):
    from nudask.train.config import ConfigError

    with pytest.raises(ConfigError, match=r"cannot change \['model.dense'\]"):
        resume(quick_run, overrides=[("model.dense", 8)])


def test_nan_loss_stops_with_a_clear_message(mb, tmp_path):
    cfg = quick_config(
        mb, tmp_path, task={"target": "energy"}, train={"optimizer": "sgd", "learning_rate": 1e12}
    )
    with pytest.raises(
        FloatingPointError,
        match=r"loss became (nan|inf) at epoch 1, batch \d+: lower "
        r"train.learning_rate",
    ):
        train(cfg, evaluate=False)


@pytest.mark.long
def test_nova_numu_cc_regression_and_classes(nova, tmp_path):
    base = {"input": {"views": None, "crop": "none", "batch_size": 32, "buffer_events": 64}}
    run = train(quick_config(nova, tmp_path, task={"target": "numu_cc", "balance": "class_weights"}, **base))
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"QE", "RES", "DIS"} <= set(metrics["by_mode"]) and "nue_cc" in metrics["by_category"]
    assert_report(run, [*CLASSIFICATION_PLOTS, "accuracy_by_mode"])

    run = train(quick_config(nova, tmp_path, task={"target": "energy"}, **base))
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"resolution", "bias", "mae"} <= set(metrics["overall"])
    assert_report(run, REGRESSION_PLOTS)

    base["input"]["densify"] = "device"
    base["input"]["device_capacity"] = 1024
    run = train(
        quick_config(
            nova,
            tmp_path,
            task={"target": "flavour"},
            model={"name": "resnet", "stages": [1, 1]},
            train={"epochs": 1},
            **base,
        )
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["overall"]["classes"][:2] == ["numu_cc", "nue_cc"] and "f1_macro" in metrics["overall"]
    assert_report(run, ["loss", "confusion", "roc", "accuracy_by_category", "events"])


@pytest.mark.long  # the mid-epoch kill (tests/test_train_resume_mid_epoch.py) covers most of it in make test
def test_resume_after_a_real_kill(mb, tmp_path):
    """SIGKILL a training process after its first epoch, then resume it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [
        sys.executable,
        "-m",
        "nudask.train",
        "--config",
        QUICK_JOB,
        "--data",
        mb,
        "--set",
        f"output.runs={tmp_path}",
        "--set",
        "train.epochs=30",
        "--no-evaluate",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list(tmp_path.glob("quick/*/checkpoints/state.json")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    (run,) = tmp_path.glob("quick/*")
    done = json.loads((run / "checkpoints" / "state.json").read_text())["epoch"]
    assert 1 <= done < 30
    resume(run, overrides=[("train.epochs", done + 1)], evaluate=False)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, done + 2))


@pytest.mark.parametrize(
    "payload, token",
    [
        ("@pd.io.common.os.system('id > pwned.txt') == 1", "'@'"),
        ("__import__('os').system('touch pwned') == 0", "'__import__('"),
    ],
)
def test_a_run_folder_config_with_a_payload_runs_nothing(tmp_path, monkeypatch, capsys, payload, token):
    from nudask.train.__main__ import main as train_main

    run = tmp_path / "runs" / "job" / "20260101_000000"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"data: {tmp_path / 'data.parquet'}\ntask:\n  select: {json.dumps(payload)}\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for command in (lambda: evaluate_main([str(run), "--quiet"]), lambda: train_main(["--resume", str(run)])):
        with pytest.raises(SystemExit) as exit_:
            command()
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"task.select: {token} at position 1 is not allowed" in err, err
    assert list(work.iterdir()) == [] and sorted(p.name for p in run.iterdir()) == ["config.yaml"]
