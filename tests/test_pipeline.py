"""preprocess end to end: every event exactly once, bad inputs, options."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from distributed import Client, LocalCluster

import nudask
from nudask.dataset.manifest import MANIFEST
from nudask.errors import InputError
from nudask.pipeline import expand_inputs
from nudask.readers.microboone import MicroBooNEReader
from nudask.resume import INPUTS, JOURNAL, RUN_FILE
from nudask.sparse import to_dense

SMALL = {"geometry": "small"}


def input_ids(paths):
    ids = []
    for p in paths:
        with h5py.File(p) as f:
            ids += [(p, k, *map(int, row)) for k, row in enumerate(f["event_table/event_id"][()])]
    return ids


def dataset_ids(ds):
    m = ds.metadata
    return list(zip(m.source_file, m.event_index, m.run, m.subrun, m.event))


@pytest.mark.slow
def test_local_process_cluster_conserves_every_event(bnb_files, tmp_path):
    """A real LocalCluster of worker processes: each input event lands once."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster),
    ):
        ds = nudask.preprocess(
            bnb_files, tmp_path / "ds", reader_options=SMALL, events_per_chunk=2, progress=False
        )
    assert sorted(dataset_ids(ds)) == sorted(input_ids(bnb_files))
    assert len(ds) == 16 == ds.manifest.events
    workers = ds.manifest.run["workers"]  # chunks ran in worker processes, not here
    assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers)
    reader = MicroBooNEReader(geometry="small")
    direct = [ev for c in reader.chunks(bnb_files[0], 50) for ev in reader.read(c)]
    for i, ev in enumerate(direct):  # densified images equal the reader's, bit for bit
        assert ds.metadata.event_index[i] == ev.index
        for view, img in ds.image(i).items():
            assert img.tobytes() == to_dense(ev.images[view]).tobytes()


def test_manifest_records_inputs_settings_and_files(bnb_files, tmp_path, client):
    ds = nudask.preprocess(
        bnb_files, tmp_path / "ds", reader_options=SMALL, events_per_chunk=3, progress=False
    )
    m = json.loads((tmp_path / "ds" / MANIFEST).read_text())
    assert m["reader"] == "microboone" and m["reader_options"]["geometry"] == "small"
    assert m["reader_options"]["cutoff"] == 10.0 and m["settings"]["events_per_chunk"] == 3
    assert [i["events"] for i in m["inputs"]] == [9, 7]
    assert all(len(i["sha256"]) == 64 and i["size"] == os.path.getsize(i["path"]) for i in m["inputs"])
    assert sum(f["rows"] for f in m["files"]) == 16 and m["failed"] == []
    names = sorted(os.listdir(tmp_path / "ds"))
    expected = [MANIFEST, RUN_FILE, JOURNAL, INPUTS, "_performance.html", "_run_log.json"]
    expected += [f["name"] for f in m["files"]]
    assert names == sorted(expected)  # and no temporary file left behind
    assert all(f["rows"] == sum(c["stop"] - c["start"] for c in f["chunks"]) for f in m["files"])
    assert ds.metadata.shape[0] == 16


def test_inputs_are_hashed_after_every_chunk_not_before_the_first_part(bnb_files, tmp_path):
    """One worker thread: the input checksums run last, so they never hold back the first part."""
    from distributed import get_task_stream

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as c,
        Client(c) as client,
        get_task_stream(client) as stream,
    ):
        ds = nudask.preprocess(
            bnb_files, tmp_path / "ds", reader_options=SMALL, events_per_chunk=4, progress=False
        )
    hashed = [s["start"] for t in stream.data if "file_sha256" in str(t["key"]) for s in t["startstops"]]
    written = [os.path.getmtime(tmp_path / "ds" / f.name) for f in ds.manifest.files]
    assert len(hashed) == 2 and len(written) >= 4
    assert max(written) <= min(hashed)  # every part was on disk before the first hash began
    assert all(len(i.sha256) == 64 for i in ds.manifest.inputs)


def test_file_names_are_deterministic(bnb_files, tmp_path, client):
    a = nudask.preprocess(bnb_files, tmp_path / "a", reader_options=SMALL, events_per_chunk=4, progress=False)
    b = nudask.preprocess(
        bnb_files[::-1], tmp_path / "b", reader_options=SMALL, events_per_chunk=4, progress=False
    )
    assert [os.path.basename(f) for f in a.files] == [os.path.basename(f) for f in b.files]
    assert dataset_ids(a) == dataset_ids(b)


def test_skip_mode_finishes_good_files_and_lists_bad_ones(bnb_files, tmp_path, client):
    garbage = tmp_path / "bnb_WithWire_99.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + b"0" * 1000)
    nowire = nudask.simulate_microboone(
        tmp_path / "bnb_NoWire_00.h5", n_events=2, geometry="small", with_wire=False
    )
    ds = nudask.preprocess(
        [bnb_files[0], garbage, nowire],
        tmp_path / "ds",
        reader="microboone",
        reader_options=SMALL,
        on_error="skip",
        progress=False,
    )
    assert sorted(dataset_ids(ds)) == sorted(input_ids(bnb_files[:1]))
    failed = {os.path.basename(f.path): f.error for f in ds.manifest.failed}
    assert set(failed) == {"bnb_WithWire_99.h5", "bnb_NoWire_00.h5"}
    assert "not a readable HDF5 file" in failed["bnb_WithWire_99.h5"]
    assert "WithWire" in failed["bnb_NoWire_00.h5"]


def test_raise_mode_stops_before_writing_anything(bnb_files, tmp_path, client):
    nowire = nudask.simulate_microboone(
        tmp_path / "bnb_NoWire_00.h5", n_events=2, geometry="small", with_wire=False
    )
    out = tmp_path / "ds"
    with pytest.raises(InputError, match="bnb_NoWire_00.h5.*wire_table"):
        nudask.preprocess(
            [bnb_files[0], nowire], out, reader="microboone", reader_options=SMALL, progress=False
        )
    assert not out.exists() or os.listdir(out) == []


def test_chunk_failing_mid_run_is_reported_in_skip_mode(bnb_files, tmp_path, client):
    import shutil

    path = shutil.copy(bnb_files[1], tmp_path / "corrupt.h5")
    with h5py.File(path) as f:
        info = f["wire_table/adc"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 10)
        fh.write(b"\xff" * 64)
    ds = nudask.preprocess(
        [bnb_files[0], path],
        tmp_path / "ds",
        reader_options=SMALL,
        on_error="skip",
        events_per_chunk=100,
        progress=False,
    )
    assert len(ds) == 9
    (fail,) = ds.manifest.failed
    assert fail.path == str(path) and "cannot read events" in fail.error
    assert (fail.start, fail.stop) == (0, 7)
    with pytest.raises(InputError, match="corrupt.h5"):
        nudask.preprocess([path], tmp_path / "ds2", reader_options=SMALL, progress=False)
    assert not (tmp_path / "ds2" / MANIFEST).exists()


def test_other_settings_against_existing_output_are_refused(bnb_files, tmp_path, client):
    kw = dict(reader_options=SMALL, progress=False)
    nudask.preprocess(bnb_files[1], tmp_path / "ds", **kw)
    with pytest.raises(FileExistsError, match=r"other settings \(changed: settings\).*overwrite"):
        nudask.preprocess(bnb_files[1], tmp_path / "ds", events_per_chunk=2, **kw)
    ds = nudask.preprocess(bnb_files[1], tmp_path / "ds", events_per_chunk=2, overwrite=True, **kw)
    assert len(ds) == 7 and len(ds.files) == 4
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a nudask dataset"):
        nudask.preprocess(bnb_files[1], tmp_path / "mine", overwrite=True, **kw)
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_eight_bit_mode_keeps_png_precision(bnb_files, tmp_path, client):
    exact = nudask.preprocess(bnb_files[1], tmp_path / "f32", reader_options=SMALL, progress=False)
    coded = nudask.preprocess(
        bnb_files[1], tmp_path / "u8", reader_options=SMALL, eight_bit=True, progress=False
    )
    assert coded.schema.field("y_value").type.value_type == "uint8"
    assert sum(f.bytes for f in coded.manifest.files) < sum(f.bytes for f in exact.manifest.files)
    for i in range(len(exact)):
        for view, img in exact.image(i).items():
            np.testing.assert_allclose(coded.image(i)[view], img, atol=100 / 255 / 2 + 1e-4)


def test_expand_inputs_globs_and_reports_nothing_found(bnb_files, tmp_path):
    folder = os.path.dirname(bnb_files[0])
    assert expand_inputs(os.path.join(folder, "bnb_*.h5")) == sorted(bnb_files)
    with pytest.raises(ValueError, match="no input files"):
        expand_inputs(str(tmp_path / "*.h5"))


def test_bad_on_error_value(bnb_files, tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        nudask.preprocess(bnb_files, tmp_path / "x", on_error="ignore")
