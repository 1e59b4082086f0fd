"""Training on DUNE clusters: mixed widths, augmentation, caps, vector targets, a real fit, a real study."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import nudask
from nudask.errors import ConfigError
from nudask.simulate.dune_sn import simulate_dune_sn


@pytest.fixture(scope="module")
def ds(tmp_path_factory, client):
    raw = tmp_path_factory.mktemp("sn_raw")
    files = simulate_dune_sn(raw, files=6, events=60, seed=2, generation="12,18", width="16,32")
    return nudask.preprocess(files, tmp_path_factory.mktemp("sn") / "ds", client=client, progress=False)


def cfg_of(ds, tmp_path, **sections):
    from nudask.train.config import make_config

    values = {"data": ds.path, "task": {"target": "main_track"}, "split": {"test": 0.25, "validation": 0.15},
              "input": {"crop": "centre", "crop_size": [128, 16], "batch_size": 8, "workers": 0},
              "output": {"runs": str(tmp_path)}}  # fmt: skip
    for k, v in sections.items():
        values[k] = {**values.get(k, {}), **v}
    return make_config(values)


def test_mixed_widths_are_refused_without_a_size(ds, tmp_path):
    from nudask.train.data import load_data

    with pytest.raises(
        ConfigError, match=r"view 'cluster' holds images of several sizes \(128x16, 128x32\).*crop: centre"
    ):
        load_data(cfg_of(ds, tmp_path, input={"crop": "none", "crop_size": None}))


@pytest.mark.parametrize("size", [[128, 16], [128, 32]])
def test_each_cluster_is_padded_or_cropped_about_its_centre(ds, tmp_path, size):
    from nudask.train.data import load_data

    data = load_data(cfg_of(ds, tmp_path, input={"crop_size": size, "scale_factor": 1.0}))
    source = data.source("train", shuffle=False)
    x, _ = source.batch(0)
    for k, row in enumerate(source.batch_rows(0)):
        img = ds.image(int(row))["cluster"]
        want = np.zeros(size, np.float32)
        w = img.shape[1]
        if w <= size[1]:
            a = (size[1] - w) // 2
            want[:, a : a + w] = img
        else:
            a = (w - size[1]) // 2
            want[:] = img[:, a : a + size[1]]
        np.testing.assert_array_equal(x["cluster"][k, ..., 0], want)


def test_flips_and_the_augmentation_multiplier(ds, tmp_path):
    from nudask.train.data import load_data

    plain = load_data(cfg_of(ds, tmp_path, input={"scale_factor": 1.0}))
    flipped = load_data(
        cfg_of(ds, tmp_path, input={"scale_factor": 1.0, "flip_probability": 1.0, "augment_repeat": 3})
    )
    a, b = plain.source("train", shuffle=False), flipped.source("train", shuffle=False)
    assert b.n_events == 3 * a.n_events
    xa, xb = a.batch(0)[0]["cluster"], b.batch(0)[0]["cluster"]
    rows_b = b.batch_rows(0)
    assert (rows_b[:3] == rows_b[0]).all()  # three copies of each event
    np.testing.assert_array_equal(xb[0], xa[0][::-1, ::-1])  # probability 1: both axes mirrored
    assert not flipped.source("validation").flip_probability  # only training is augmented


def test_max_samples_caps_the_events(ds, tmp_path):
    from nudask.train.data import load_data

    data = load_data(cfg_of(ds, tmp_path, task={"max_samples": 100}))
    assert data.keep.sum() == 100


def test_the_direction_is_a_unit_vector_target(ds, tmp_path):
    from nudask.train.data import load_data

    data = load_data(cfg_of(ds, tmp_path, task={"target": "direction", "select": "is_main_track == 1"}))
    assert data.task.kind == "vector" and data.task.n_outputs == 3
    y = data.y[data.keep]
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(y[:, 0], data.meta["true_dir_x"][data.keep], atol=1e-6)
    assert data.source("train").batch(0)[1].shape == (8, 3)
    with pytest.raises(ConfigError, match="flip mirrors the image but not the vector target"):
        load_data(cfg_of(ds, tmp_path, task={"target": "direction"}, input={"flip_probability": 0.5}))


def test_angles_and_the_sign_ambiguity():
    from nudask.train.vectors import angles, metrics

    true = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    pred = np.array([[-1.0, 0, 0], [0, 0.5, 0.5]])
    np.testing.assert_allclose(angles(true, pred), [180, 45])
    np.testing.assert_allclose(angles(true, pred, axial=True), [0, 45])
    m = metrics(true, pred, axial=True)
    assert m["sign"].startswith("axial") and m["angle_68_signed"] > m["angle_68_axial"]


@pytest.mark.slow
def test_main_track_identifier_trains_and_separates(ds, tmp_path):
    from nudask.train.config import load
    from nudask.train.fit import train

    cfg = load("jobs/train_dune_mt.yaml", [("data", ds.path), ("output.runs", str(tmp_path)),
                                           ("train.epochs", 4), ("input.workers", 0)])  # fmt: skip
    run = train(cfg, config_path="jobs/train_dune_mt.yaml")
    m = json.loads((run / "metrics.json").read_text())
    assert m["overall"]["roc_auc"] > 0.95
    assert len(list((run / "samples").glob("sample_*.png"))) == 4
    lr = [h.get("learning_rate") for h in json.loads((run / "history.json").read_text())]
    assert lr[0] is None or lr[-1] < lr[0]  # decayed every epoch where keras logs it


def tune_job(folder, *, epochs: int, tune: str = ""):
    """jobs/tune_dune_mt.yaml for 2 trials of ``epochs``, heartbeats every second, ``tune`` added."""
    job = folder / "tune.yaml"
    extra = "\n  heartbeat: 1" + (f"\n  {tune}" if tune else "")
    text = open("jobs/tune_dune_mt.yaml").read()
    job.write_text(
        text.replace("epochs: 4", f"epochs: {epochs}")
        .replace("trials: 8", "trials: 2")
        .replace("seed: 0", "seed: 0" + extra)
    )
    return job


@pytest.mark.long  # a whole study, twice
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the test plays a killed driver
def test_a_study_runs_trials_as_dask_tasks_and_resumes(ds, tmp_path):
    import optuna
    from distributed import Client, LocalCluster

    from nudask.train.tune import _storage, storage_url, tune

    job = tune_job(tmp_path, epochs=2)
    study = tmp_path / "study"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
        Client(c) as cl,
    ):
        res = tune(job, study, data=ds.path, client=cl, verbose=False)
        assert len(res["trials"]) == 2 and res["best"]["value"] > 0
        hosts = {t["run"] for t in res["trials"]}
        assert len(hosts) == 2 and all("trial_" in h for h in hosts)
        # trials left running by a killed driver: one whose heartbeat stopped, and one killed
        # between its ask and its first beat (it has none); the rerun fails both (Optuna's
        # fail_stale_trials) and runs their parameters again as new trials
        st = optuna.load_study(study_name="study", storage=_storage(storage_url(study), 1))
        space = {"train.learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)}
        killed = st.ask(space)
        st._storage.record_heartbeat(killed._trial_id)
        unbeaten = st.ask(space)
        time.sleep(4)  # past the grace period (3 heartbeats)
        res = tune(job, study, data=ds.path, client=cl, trials=4, verbose=False)  # resumes: two more
    st = optuna.load_study(study_name="study", storage=f"sqlite:///{study / 'study.db'}")
    states = {t.number: t.state.name for t in st.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "FAIL", 4: "COMPLETE", 5: "COMPLETE"}
    for again, lost in zip(st.trials[4:], (killed, unbeaten)):
        assert again.system_attrs["failed_trial"] == lost.number
        assert again.params["train.learning_rate"] == lost.params["train.learning_rate"]
    assert [t["number"] for t in res["trials"]] == [0, 1, 2, 3, 4, 5]
    assert (study / "index.html").exists() and (study / "best_config.yaml").exists()
    assert "(again: 2)" in (study / "summary.md").read_text()
    assert "plots/optimization_history.png" in res["plots"]


@pytest.mark.slow
def test_a_study_whose_workers_all_leave_stops_after_worker_wait(ds, tmp_path):
    """Every worker gone mid-trial (SLURM jobs at their walltime): the driver stops after
    tune.worker_wait with what to do, instead of waiting for ever; the trial is recorded failed."""
    import threading

    import optuna
    from distributed import Client, LocalCluster

    from nudask.errors import TrainingError
    from nudask.train.tune import tune

    job = tune_job(tmp_path, epochs=200, tune="worker_wait: 3")
    study = tmp_path / "study"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
        Client(c) as cl,
    ):

        def leave():
            while not any(cl.processing().values()):  # a trial is running
                time.sleep(0.1)
            c.scale(0)

        threading.Thread(target=leave, daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(
            TrainingError, match=r"every Dask worker left .* 3 s \(tune.worker_wait\), with 0 of 2"
        ):
            tune(job, study, data=ds.path, client=cl, verbose=False)
        took = time.monotonic() - t0
    assert took < 90, took
    st = optuna.load_study(study_name="study", storage=f"sqlite:///{study / 'study.db'}")
    assert [t.state.name for t in st.trials] == ["FAIL"]


def test_worker_wait_is_seconds_or_null(tmp_path):
    from nudask.train.tune import _worker_wait_of

    assert _worker_wait_of({}) == 600 and _worker_wait_of({"worker_wait": None}) is None
    for bad in (0, -1, "soon", True):
        with pytest.raises(ConfigError, match="tune.worker_wait"):
            _worker_wait_of({"worker_wait": bad})
