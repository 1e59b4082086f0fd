"""A format nudask has never heard of, from a plugin package, end to end with no host change.

``tests/plugins/nudask_points`` registers the reader ``points`` through its entry point: 3-D
points with per-point labels (0 included), a varying count, one event per small file, grid
extents that differ between files.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import nudask
from nudask.cli import main
from nudask.describe import summarize
from nudask.display import show_event
from nudask.events import Chunk
from nudask.readers import available_readers, guess_reader
from nudask.testing import ReaderContract

N_FILES = 30
HOST = Path(nudask.__file__).parent
FORMAT_NAMES = re.compile(r"microboone|uboone|\bnova\b|dune|inss|connie", re.IGNORECASE)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("points")
    assert main(["simulate", str(out), "--format", "points", "--files", str(N_FILES), "--seed", "3"]) == 0
    return sorted(glob.glob(str(out / "*.pts.npz")))


@pytest.fixture(scope="module")
def ds(files, tmp_path_factory):
    from distributed import Client, LocalCluster

    out = tmp_path_factory.mktemp("ds") / "points.parquet"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
        Client(c) as cl,
    ):
        return nudask.preprocess(files, out, events_per_chunk=8, client=cl, progress=False)


def truth(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_the_plugin_is_found_through_its_entry_point(files):
    assert "points" in available_readers()
    assert guess_reader(files[0]) == "points"


def test_host_code_names_no_format():
    offenders = []
    for path in HOST.rglob("*.py"):
        rel = path.relative_to(HOST).as_posix()
        if rel.startswith(("readers/", "simulate/")):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if FORMAT_NAMES.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_small_files_share_tasks_and_every_event_lands_once(files, ds):
    assert len(ds) == N_FILES
    assert len(ds.files) == -(-N_FILES // 8)  # 8 one-event files per task and part
    assert sorted(ds.metadata["source_file"]) == sorted(files)
    parts = ds.manifest.files
    assert sum(len(p.chunks) for p in parts) == N_FILES and {len(p.chunks) for p in parts} == {8, 6}


def test_points_come_back_with_their_labels_and_sizes(files, ds):
    extents = {tuple(truth(f)["extent"]) for f in files}
    assert len(extents) > 1  # images of several sizes in one dataset
    assert ds.views["points"].shape == tuple(max(e[k] for e in extents) for k in range(3))
    for i, source in enumerate(ds.metadata["source_file"]):
        t = truth(source)
        coo = ds.coo(i)["points"]
        assert coo.shape == tuple(t["extent"])
        order = np.lexsort((t["xyz"][:, 2], t["xyz"][:, 1], t["xyz"][:, 0]))
        for k in range(3):
            np.testing.assert_array_equal(coo.index[k], t["xyz"][order, k])
        np.testing.assert_array_equal(coo.channels["energy"], t["energy"][order])
        np.testing.assert_array_equal(coo.channels["label"], t["label"][order])
        assert (coo.channels["label"] == 0).any() or (t["label"] != 0).all()
        xy = ds.image(i)["xy"]
        assert xy.shape == tuple(t["extent"][:2])
        assert np.isclose(xy.sum(), t["energy"].sum(), rtol=1e-5)
    assert (np.concatenate([ds.coo(i)["points"].channels["label"] for i in range(len(ds))]) == 0).any()


def test_a_dense_view_is_stored_whole_and_exact(files, ds):
    assert ds.views["frame"].kind == "dense"
    reader = nudask.get_reader("points")
    table = pq.read_table(ds.files[0], columns=["frame_shape", "frame_value"])
    assert "frame_row" not in pq.read_schema(ds.files[0]).names  # no coordinates for a dense view
    assert len(table.column("frame_value")[0]) == 64
    for i, source in enumerate(ds.metadata["source_file"]):
        (event,) = reader.read(Chunk(source, "points", 0, 1))
        frame = ds.image(i, dtype=None)["frame"]
        assert frame.dtype == np.int32
        np.testing.assert_array_equal(frame, event.images["frame"])


def test_any_parquet_reader_sees_the_channels(ds):
    columns = ["points_x", "points_z_length", "points_energy", "points_label", "points_shape"]
    table = pq.read_table(ds.files[0], columns=columns)
    assert table.column("points_label").type.value_type == "int32"
    # one run per point or more: the runs' lengths count the points the channels hold
    assert len(table.column("points_x")[0]) == len(table.column("points_z_length")[0])
    assert sum(table.column("points_z_length")[0].as_py()) == len(table.column("points_label")[0])


def test_describe_and_show(ds, files, tmp_path):
    s = summarize(ds, sample=3)
    kinds = [("muon", "electron")[int(truth(f)["kind"])] for f in ds.metadata["source_file"]]
    assert s["counts"]["kind"] == {
        k: kinds.count(k) for k in sorted(set(kinds), key=lambda k: -kinds.count(k))
    }
    assert s["energy"]["unit"] == "MeV" and s["energy"]["column"] == "total_energy"
    png = show_event(ds, 0, tmp_path / "e0.png")
    assert png.stat().st_size > 1000


def test_a_training_batch(ds, tmp_path):
    from nudask.train.config import make_config
    from nudask.train.data import load_data

    cfg = make_config(
        {
            "data": ds.path,
            "task": {"target": "kind"},
            "input": {  # images of several sizes: each at the top left of a window of the largest
                "views": ["xy"],
                "batch_size": 4,
                "crop": "fixed",
                "crop_size": list(ds.views["xy"].shape),
            },
            "split": {"test": 0.3, "validation": 0.0},
            "output": {"runs": str(tmp_path)},
        }
    )
    data = load_data(cfg)
    x, y = data.source("train").batch(0)[:2]
    assert x["xy"].shape == (4, *ds.views["xy"].shape, 1) and set(np.unique(y)) <= {0, 1}
    rows = data.source("train", shuffle=False).batch_rows(0)
    for k, row in enumerate(rows):  # the batch holds the stored images, scaled
        image = ds.image(int(row))["xy"]
        dense = np.zeros(ds.views["xy"].shape, np.float32)
        dense[: image.shape[0], : image.shape[1]] = image
        got = data.source("train", shuffle=False).batch(0)[0]["xy"][k, ..., 0]
        np.testing.assert_allclose(got, dense * data.preps["xy"].factor, rtol=1e-6)


def test_a_task_the_format_cannot_support_names_the_role(ds, tmp_path):
    from nudask.errors import ConfigError
    from nudask.train.config import make_config
    from nudask.train.data import load_data

    cfg = make_config({"data": ds.path, "task": {"target": "flavour"}, "input": {"views": ["xy"]}})
    with pytest.raises(ConfigError, match="label role 'flavour'.*its labels: kind"):
        load_data(cfg)


class TestPointsContract(ReaderContract):
    @pytest.fixture
    def reader(self):
        return nudask.get_reader("points")

    @pytest.fixture
    def sample_file(self, files):
        return files[0]


def test_many_inputs_are_planned_on_the_workers(files):
    from distributed import Client, LocalCluster, get_task_stream

    from nudask.pipeline import LOCAL_PLAN_FILES, plan

    assert len(files) > LOCAL_PLAN_FILES
    reader = nudask.get_reader("points")
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
        Client(c) as cl,
    ):
        with get_task_stream(cl) as ts:
            remote = plan(files, reader, events_per_chunk=8, on_error="raise", eight_bit=False, client=cl)
        workers = {t["worker"] for t in ts.data if str(t["key"]).startswith("plan_files")}
    local = plan(files, reader, events_per_chunk=8, on_error="raise", eight_bit=False)
    assert workers and remote.tasks == local.tasks and remote.schema.equals(local.schema)
