"""The dataset on disk: schema, independent readers, open_dataset."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import nudask
from nudask.dataset.manifest import MANIFEST
from nudask.schema import SCHEMA_VERSION, schema_info
from nudask.sparse import from_runs


@pytest.fixture(scope="module")
def ds(bnb_files, tmp_path_factory, client):
    out = tmp_path_factory.mktemp("ds") / "bnb.parquet"
    return nudask.preprocess(
        bnb_files,
        out,
        reader_options={"geometry": "small"},
        events_per_chunk=3,
        row_group_events=2,
        progress=False,
    )


def test_schema_columns_and_types(ds):
    s = ds.schema
    assert s.names[:5] == ["source_file", "event_index", "run", "subrun", "event"]
    for view, wires in zip("uvy", (240, 240, 346)):  # smallest fitting index types
        assert s.field(f"{view}_wire").type.value_type == (pa.uint8() if wires < 256 else pa.uint16())
        assert s.field(f"{view}_time").type.value_type == pa.uint8()  # 214 bins
        assert s.field(f"{view}_value").type.value_type == pa.float32()
        assert s.field(f"{view}_shape").type.list_size == 2
        assert ds.views[view].shape == (wires, 214)
    assert s.field("nu_pdg").type == pa.int32() and s.field("nu_energy").type == pa.float32()
    assert s.field("nu_vtx").type.list_size == 3
    info = schema_info(s)
    assert info["schema_version"] == SCHEMA_VERSION and info["nudask_version"] == nudask.__version__


def test_indices_are_sorted_and_delta_encoded(ds):
    md = pq.ParquetFile(ds.files[0]).metadata
    assert md.num_row_groups >= 2 and md.row_group(0).num_rows == 2
    cols = {
        md.row_group(0).column(k).path_in_schema: md.row_group(0).column(k) for k in range(md.num_columns)
    }
    assert "DELTA_BINARY_PACKED" in cols["y_wire.list.element"].encodings
    assert cols["y_wire.list.element"].compression == "ZSTD"
    table = pq.read_table(ds.files[0])
    for row in range(table.num_rows):
        runs = [table[c][row].values.to_numpy() for c in ("y_wire", "y_time", "y_time_length")]
        w, t = (a.astype(int) for a in from_runs(tuple(runs[:2]), runs[2]))
        assert w.size == len(table["y_value"][row]) > 0
        assert np.all(np.diff(w * 1000 + t) > 0)


def test_pyarrow_dataset_reads_the_folder(ds):
    table = pads.dataset(ds.path, format="parquet").to_table(columns=["event", "y_value"])
    assert table.num_rows == len(ds)
    assert sorted(table["event"].to_pylist()) == sorted(ds.metadata.event.tolist())


def test_pandas_reads_the_folder(ds):
    df = pd.read_parquet(ds.path, columns=["run", "subrun", "event", "nu_energy", "u_value"])
    assert len(df) == len(ds)
    assert np.isclose(df.nu_energy.sum(), ds.metadata.nu_energy.sum())


def test_duckdb_reads_the_folder(ds):
    rows = duckdb.sql(
        f"SELECT count(*), sum(len(y_value)), count(DISTINCT (run, subrun, event)) "
        f"FROM read_parquet('{ds.path}/*.parquet')"
    ).fetchall()[0]
    nnz = sum(
        pq.read_table(f, columns=["y_value"])["y_value"].combine_chunks().values.__len__() for f in ds.files
    )
    assert rows == (len(ds), nnz, len(ds))
    cc = duckdb.sql(
        f"SELECT is_cc, count(*) FROM read_parquet('{ds.path}/*.parquet') GROUP BY is_cc ORDER BY is_cc"
    ).fetchall()
    assert dict(cc) == ds.metadata.is_cc.value_counts().to_dict()


def test_metadata_and_images_line_up(ds):
    m = ds.metadata
    assert list(m.columns[:5]) == ["source_file", "event_index", "run", "subrun", "event"]
    assert len(m) == len(ds) == 16
    img = ds.image(5)
    assert set(img) == {"u", "v", "y"} and img["y"].shape == (346, 214)
    assert img["y"].dtype == np.float32 and img["y"].max() <= 100
    with pytest.raises(IndexError, match="out of range"):
        ds.image(16)
    np.testing.assert_array_equal(ds.image(-1)["u"], ds.image(15)["u"])


def test_one_event_is_read_without_the_rest(ds, tmp_path):
    import shutil

    copy = shutil.copytree(ds.path, tmp_path / "copy")
    other = nudask.open_dataset(copy)
    for f in other.files[1:]:  # ruin every file but the first
        open(f, "wb").write(b"gone")
    assert other.image(0)["y"].shape == (346, 214)
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error for a ruined file
        other.image(len(other) - 1)


def test_open_dataset_errors(tmp_path, ds):
    with pytest.raises(FileNotFoundError, match="no dataset"):
        nudask.open_dataset(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(ValueError, match="did not finish"):
        nudask.open_dataset(tmp_path / "half")
    import json
    import shutil

    copy = shutil.copytree(ds.path, tmp_path / "old")
    m = json.loads((copy / MANIFEST).read_text())
    m["schema_version"] = 0
    (copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ValueError, match="schema version 0"):
        nudask.open_dataset(copy)


def test_views_and_fields_are_merged_over_inputs_or_refused_by_name():
    from nudask.errors import InputError
    from nudask.events import ViewSpec
    from nudask.schema import merge_fields, merge_views

    a = {"u": ViewSpec("u", ("wire", "time"), (10, 5))}
    assert merge_views(a, {"u": ViewSpec("u", ("wire", "time"), (12, 4))}, "b.h5")["u"].shape == (12, 5)
    with pytest.raises(InputError, match=r"file 'c.h5': view 'u' has channels \(\('value', 'uint8'\),\)"):
        merge_views(a, {"u": ViewSpec("u", ("wire", "time"), (10, 5), "uint8")}, "c.h5")
    with pytest.raises(InputError, match=r"file 'd.h5': its views \['v'\] differ"):
        merge_views(a, {"v": ViewSpec("v", ("wire", "time"), (10, 5))}, "d.h5")
    f = {"e": ("<f4", ()), "k": ("<i4", ())}
    with pytest.raises(InputError, match=r"file 'e.h5'.*missing \['k'\].*'e' is \('<f8', \(\)\)"):
        merge_fields(f, {"e": ("<f8", ())}, "e.h5")
