"""Training data: simulated datasets shared by the training tests, and the checks on a dataset.

The builders below are imported by the other ``test_train_*`` modules
(``from test_train_data import ...``); each dataset is built once per session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from nudask.dataset.write import file_sha256, footer_sha256
from nudask.records import Manifest
from nudask.train.config import ConfigError, make_config
from nudask.train.data import DataError, load_data

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_BUILT: dict[str, str] = {}
QUICK_JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "train_quick.yaml")


def _preprocess(inputs, out, **kw):
    from distributed import Client, LocalCluster

    from nudask import preprocess

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as c,
        Client(c) as client,
    ):
        preprocess(inputs, out, client=client, progress=False, **kw)
    return str(out)


def microboone_dataset(tmp_path_factory, n_events=40, events_per_chunk=20, eight_bit=False) -> str:
    """Small-geometry MicroBooNE: an inclusive and a nue-CC file, ``events_per_chunk`` events
    per Parquet file, row groups of 8 events (8-bit values with ``eight_bit``)."""
    key = f"microboone-{n_events}-{events_per_chunk}{'-8bit' if eight_bit else ''}"
    if key not in _BUILT:
        from nudask.simulate import simulate_microboone

        raw = tmp_path_factory.getbasetemp() / "train-raw"
        raw.mkdir(exist_ok=True)
        files = {}
        for k, sample in enumerate(("bnb", "nue")):
            path = raw / f"{sample}_WithWire_{n_events}.h5"
            if not path.exists():
                simulate_microboone(
                    path,
                    n_events=n_events,
                    seed=10 + k,
                    sample=sample,
                    geometry="small",
                    subrun=k + 1,
                    chunk_rows=400,
                    cosmics="sparse",  # the files these tests were written on; density is not their subject
                )
            files[sample] = str(path)
        out = tmp_path_factory.mktemp(key) / "mb.parquet"
        _BUILT[key] = _preprocess(
            [files["bnb"], files["nue"]],
            out,
            reader="microboone",
            reader_options={"geometry": "small"},
            events_per_chunk=events_per_chunk,
            row_group_events=8,
            eight_bit=eight_bit,
        )
    return _BUILT[key]


def nova_dataset(tmp_path_factory, n_events=400) -> str:
    key = f"nova-{n_events}"
    if key not in _BUILT:
        from nudask.simulate import simulate_nova

        folder = tmp_path_factory.mktemp(key)
        h5 = simulate_nova(folder / "neutrino1.h5", n_events=n_events, seed=5)
        _BUILT[key] = _preprocess([h5], folder / "nova.parquet", events_per_chunk=100, row_group_events=16)
    return _BUILT[key]


def quick_config(data: str, tmp_path, **sections):
    """The tests' tiny job (jobs/train_quick.yaml) on ``data``, runs under ``tmp_path``."""
    from nudask.train.config import load_file

    values = load_file(QUICK_JOB)
    values["data"] = data
    values.setdefault("output", {})["runs"] = str(tmp_path / "runs")
    for section, entries in sections.items():
        values.setdefault(section, {}).update(entries)
    return make_config(values)


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


def test_labels_selection_and_split_counts(mb, tmp_path):
    data = load_data(quick_config(mb, tmp_path))
    s = data.summary()
    assert s["events"] == 80 and s["selected"] == 80
    assert sum(s[k]["events"] for k in ("train", "validation", "test")) == 80
    cats = data.truth["category"].to_numpy()
    assert np.array_equal(data.y == 1, cats == "nue_cc")
    assert (cats == "nue_cc").sum() >= 40  # the nue file is all nue CC, the bnb file adds a few


def test_energy_top_fraction_keeps_the_most_energetic_signal(mb, tmp_path):
    data = load_data(quick_config(mb, tmp_path, task={"energy_top_fraction": 0.5, "energy_top_classes": [1]}))
    e, sig = data.truth["energy"].to_numpy(), data.y == 1
    kept = data.keep & sig
    assert abs(kept.sum() - sig.sum() / 2) <= 1
    assert e[kept].min() >= e[sig & ~data.keep].max()
    assert data.keep[~sig].all()  # the background is untouched


def test_query_selection(mb, tmp_path):
    data = load_data(quick_config(mb, tmp_path, task={"select": "nu_energy < 2"}))
    assert (data.truth["energy"].to_numpy()[data.keep] < 2).all() and 0 < data.keep.sum() < 80


def test_wrong_schema_version_is_refused(mb, tmp_path):
    copy = tmp_path / "old.parquet"
    shutil.copytree(mb, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["schema_version"] = 0
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="schema version 0.*preprocess the inputs again"):
        load_data(quick_config(str(copy), tmp_path))


def test_missing_column_is_refused(mb, tmp_path):
    copy = tmp_path / "cut.parquet"
    shutil.copytree(mb, copy)
    first = sorted(copy.glob("*.parquet"))[0]
    table = pq.read_table(first)
    pq.write_table(table.drop_columns(["y_value"]), first)  # a part written without a view's column
    manifest = Manifest.read(str(copy))  # ... and recorded as written, so the parts check out
    manifest.files = [
        replace(
            p,
            bytes=first.stat().st_size,
            sha256=file_sha256(str(first)),
            footer_sha256=footer_sha256(str(first)),
        )
        if p.name == first.name
        else p
        for p in manifest.files
    ]
    manifest.write(str(copy))
    with pytest.raises(DataError, match=r"lacks the columns \['y_value'\]"):
        load_data(quick_config(str(copy), tmp_path))
    data = load_data(quick_config(str(copy), tmp_path, input={"views": ["u", "v"]}))  # y not needed
    assert list(data.preps) == ["u", "v"]


def test_empty_split_is_refused(mb, tmp_path):
    with pytest.raises(DataError, match="the selection keeps none of the 80 events"):
        load_data(quick_config(mb, tmp_path, task={"select": "nu_energy > 1000"}))
    with pytest.raises(DataError, match="the test split is empty"):
        load_data(quick_config(mb, tmp_path, split={"test": 1e-9}))
    with pytest.raises(DataError, match="validation split is empty"):
        load_data(quick_config(mb, tmp_path, split={"validation": 1e-9}))


def test_selection_leaving_a_class_empty_is_refused(mb, tmp_path):
    with pytest.raises(DataError, match=r"class \['nue CC'\] has no events in the train split"):
        load_data(quick_config(mb, tmp_path, task={"select": "abs(nu_pdg) == 14"}))


def test_target_the_format_lacks_is_refused(mb, tmp_path):
    with pytest.raises(ConfigError, match="task.target: mode needs the label role 'mode'"):
        load_data(quick_config(mb, tmp_path, task={"target": "mode"}))
    with pytest.raises(ConfigError, match=r"input.views: \['w'\] not in the dataset"):
        load_data(quick_config(mb, tmp_path, input={"views": ["w"]}))


def test_nova_targets(tmp_path_factory, tmp_path):
    path = nova_dataset(tmp_path_factory)
    cfg = quick_config(path, tmp_path, task={"target": "mode"}, input={"crop": "none", "views": None})
    data = load_data(cfg)
    assert data.task.classes[:3] == ("QE", "RES", "DIS")
    assert set(data.truth["mode"]) <= set(data.task.classes)
    numu = load_data(
        quick_config(
            path,
            tmp_path,
            task={"target": "numu_cc"},
            input={"crop": "centroid", "crop_size": [64, 64], "views": None},
        )
    )
    assert np.array_equal(numu.y == 1, numu.meta["interaction"].to_numpy() <= 3)
    energy = load_data(
        quick_config(
            path, tmp_path, task={"target": "lepton_fraction"}, input={"crop": "none", "views": None}
        )
    )
    y = energy.y[energy.keep]
    assert np.isfinite(y).all() and (0 <= y).all() and (y <= 1).all()
    assert not energy.keep[energy.truth["category"].to_numpy() == "cosmic"].any()  # no neutrino energy
    with pytest.raises(ConfigError, match="vertex needs the vertex in pixels"):
        load_data(quick_config(path, tmp_path, input={"crop": "vertex", "views": None}))


def test_selection_on_metadata_and_truth_columns(mb, tmp_path):
    data = load_data(quick_config(mb, tmp_path, task={"select": "category in ['nue_cc'] or nu_energy > 1.5"}))
    expected = (data.truth["category"].to_numpy() == "nue_cc") | (data.meta["nu_energy"].to_numpy() > 1.5)
    assert np.array_equal(data.keep, expected) and 0 < data.keep.sum() < 80
    with pytest.raises(ConfigError) as err:
        load_data(quick_config(mb, tmp_path, task={"select": "nu_enrgy < 2"}))
    message = str(err.value)
    assert message.startswith(
        "task.select: unknown column 'nu_enrgy' at position 1 (did you mean 'nu_energy'?)"
    )
    assert "\n" not in message and all(c in message for c in ("run", "nu_pdg", "category", "energy"))


def test_a_payload_in_the_selection_runs_nothing(mb, tmp_path, monkeypatch, capsys):
    import dataclasses

    from nudask.train.__main__ import main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    payload = "@pd.io.common.os.system('id > pwned.txt') == 1"
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"task": {"select": payload}, "output": {"runs": str(work / "runs")}}))
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(job), "--data", mb])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "task.select: '@' at position 1 is not allowed" in err
    # a config that skipped the checks (built by hand) is refused where the selection is applied
    cfg = quick_config(mb, tmp_path)
    for text, token in ((payload, "'@'"), ("__import__('os').system('touch pwned') == 0", "'__import__('")):
        unchecked = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, select=text))
        with pytest.raises(
            ConfigError, match=f"task.select: {re.escape(token)} at position 1 is not allowed"
        ):
            load_data(unchecked)
    assert list(work.iterdir()) == []
