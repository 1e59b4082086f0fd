"""COO views stored as runs (schema v3), float16 values, and the README's readers without nudask."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nudask
from nudask.dataset.write import batch_to_table, events_to_table, write_parquet
from nudask.errors import InputError
from nudask.events import Coo, Event, EventBatch, EventId, ViewSpec
from nudask.readers import get_reader
from nudask.schema import FLOAT16_RELATIVE_ERROR, build_schema, schema_info, views_of
from nudask.simulate import simulate_microboone
from nudask.sparse import entry_offsets, from_runs, to_runs

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
SMALL = {"geometry": "small"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Run 5000, subrun 0, events 1..4: the README's example event (5000, 0, 3) is row 2."""
    folder = tmp_path_factory.mktemp("layout")
    return str(
        simulate_microboone(folder / "bnb_WithWire_00.h5", n_events=4, seed=3, geometry="small", subrun=0)
    )


def _preprocess(source, out, **kw):
    return nudask.preprocess(
        source, out, reader="microboone", reader_options=SMALL, events_per_chunk=2, row_group_events=2,
        progress=False, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def exact(source, tmp_path_factory, client):
    return _preprocess(source, tmp_path_factory.mktemp("exact") / "bnb.parquet")


@pytest.fixture(scope="module")
def half(source, tmp_path_factory, client):
    return _preprocess(source, tmp_path_factory.mktemp("half") / "bnb.parquet", values="float16")


@pytest.fixture(scope="module")
def events(source):
    reader = get_reader("microboone", **SMALL)
    return [e for chunk in reader.chunks(source, 10) for e in reader.read(chunk)]


def _sorted_coords(rng, shape, n):
    flat = np.unique(rng.integers(0, np.prod(shape), n))
    return tuple(c.astype(np.uint16) for c in np.unravel_index(flat, shape))


@pytest.mark.parametrize("shape", [(7, 30), (5, 6, 40), (50,)])
def test_runs_round_trip_and_are_maximal_and_stay_inside_their_image(shape):
    rng = np.random.default_rng(1)
    images = [_sorted_coords(rng, shape, n) for n in (0, 60, 1, 90, 0)]
    index = tuple(np.concatenate([im[a] for im in images]) for a in range(len(shape)))
    offsets = np.cumsum([0] + [im[0].size for im in images])
    runs, lengths, run_offsets = to_runs(index, offsets, np.uint16)
    back = from_runs(runs, lengths)
    for a, b in zip(back, index):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(entry_offsets(lengths, run_offsets), offsets)
    assert lengths.min() >= 1 and lengths.dtype == np.uint16
    for k in range(len(images)):  # no two runs of one image could be one: every run is maximal
        r = slice(run_offsets[k], run_offsets[k + 1])
        lead, first, n = [a[r].astype(int) for a in runs[:-1]], runs[-1][r].astype(int), lengths[r]
        same = np.all([x[1:] == x[:-1] for x in lead], axis=0) if lead else np.ones(max(n.size - 1, 0), bool)
        assert not np.any(same & (first[1:] == first[:-1] + n[:-1]))
    assert run_offsets.tolist() == sorted(run_offsets.tolist()) and run_offsets[-1] == lengths.size


def test_a_run_ends_where_its_image_ends():
    # image 0 ends at (0, 5), image 1 starts at (0, 6): one run each, not one across both
    index = (np.array([0, 0, 0, 0]), np.array([4, 5, 6, 7]))
    runs, lengths, run_offsets = to_runs(index, np.array([0, 2, 4]))
    assert runs[1].tolist() == [4, 6] and lengths.tolist() == [2, 2] and run_offsets.tolist() == [0, 1, 2]
    assert to_runs(index)[1].tolist() == [4]


def test_the_dataset_stores_runs_and_reads_back_every_entry(exact, events):
    info = schema_info(exact.schema)
    assert info["schema_version"] == 3 and info["values"] == "exact"
    assert {v["coo_layout"] for v in info["views"].values()} == {"runs"}
    s = exact.schema
    assert s.field("y_time_length").type.value_type == pa.uint8()  # runs of at most 214 bins
    assert exact.schema.names.index("y_time_length") == exact.schema.names.index("y_time") + 1
    table = pq.read_table(exact.files[0])
    n_runs = len(table["y_wire"][0])
    assert n_runs == len(table["y_time"][0]) == len(table["y_time_length"][0])
    assert sum(table["y_time_length"][0].as_py()) == len(table["y_value"][0]) > n_runs  # runs hold entries
    assert len(exact) == len(events)
    for i, ev in enumerate(events):  # the reader's images, entry for entry, value for value
        got = exact.coo(i)
        for view, img in ev.images.items():
            assert got[view] == img, (i, view)


def test_runs_cost_fewer_bytes_than_pairs(source, events, tmp_path):
    reader = get_reader("microboone", **SMALL)
    fields, views = reader.metadata_fields(source), reader.views(source)
    sizes = {}
    for layout in ("runs", "pairs"):
        specs = {k: dataclasses.replace(v, coo_layout=layout) for k, v in views.items()}
        schema = build_schema(specs, fields)
        file = str(tmp_path / f"{layout}.parquet")
        write_parquet(events_to_table(events, "x.h5", schema), file)
        md = pq.ParquetFile(file).metadata
        sizes[layout] = sum(
            md.row_group(g).column(c).total_compressed_size
            for g in range(md.num_row_groups)
            for c in range(md.num_columns)
            if re.match(r"[uvy]_(wire|time)", md.row_group(g).column(c).path_in_schema)
        )
        if layout == "runs":  # encodings chosen by measurement (parquet_options)
            cols = {
                md.row_group(0).column(c).path_in_schema: md.row_group(0).column(c)
                for c in range(md.num_columns)
            }
            assert "DELTA_BINARY_PACKED" in cols["u_wire.list.element"].encodings
            assert "BYTE_STREAM_SPLIT" in cols["u_time.list.element"].encodings
            assert "BYTE_STREAM_SPLIT" in cols["u_time_length.list.element"].encodings
            assert "BYTE_STREAM_SPLIT" in cols["u_value.list.element"].encodings
    assert sizes["runs"] < 0.75 * sizes["pairs"], sizes


def test_v2_dataset_opens_with_the_same_pixels_and_streams(tmp_path):
    from nudask.train.data import stream_columns
    from nudask.train.stream import Layout, Window

    v2 = nudask.open_dataset(shutil.copytree(DATA / "v2_microboone", tmp_path / "v2"))
    assert v2.manifest.schema_version == 2 and len(v2) == 6
    assert {v.coo_layout for v in v2.views.values()} == {"pairs"}
    expected = np.load(DATA / "v2_microboone_images.npz")
    for k in range(len(v2)):
        for view, image in v2.image(k).items():
            np.testing.assert_array_equal(image, expected[f"{k}_{view}"])
    layout = Layout.of(v2.files)
    window = Window(layout, np.arange(len(layout.rg_rows)), {"y": stream_columns(v2.views["y"])})
    _assert_window_matches(window, v2, "y")


def test_the_training_stream_reads_runs_as_every_entry(exact):
    from nudask.train.data import stream_columns
    from nudask.train.stream import Layout, Window

    columns = stream_columns(exact.views["u"])
    assert columns == ["u_wire", "u_time", "u_time_length", "u_value"]
    layout = Layout.of(exact.files)
    window = Window(layout, np.arange(len(layout.rg_rows)), {"u": columns})
    _assert_window_matches(window, exact, "u")


def _assert_window_matches(window, ds, view):
    bounds, chunks = window.columns[view]
    row = 0
    for c, (offsets, arrays) in enumerate(chunks):
        assert len(arrays) == 3  # every entry's (wire, time) and its value
        for r in range(int(bounds[c + 1] - bounds[c])):
            coo = ds.coo(row)[view]
            a, b = offsets[r], offsets[r + 1]
            np.testing.assert_array_equal(arrays[0][a:b], coo.index[0])
            np.testing.assert_array_equal(arrays[1][a:b], coo.index[1])
            np.testing.assert_array_equal(arrays[2][a:b], coo.values)
            row += 1
    assert row == len(ds)


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return re.search(r"```\w+\n(.*?)```", after, re.S).group(1)


def test_the_readme_duckdb_query_rebuilds_the_image(exact, monkeypatch):
    monkeypatch.chdir(Path(exact.path).parent)  # the README's dataset is bnb.parquet
    query = _readme_block("duckdb-image-query")
    text = (ROOT / "README.md").read_text()
    call = re.search(r"^pixels = duckdb\.execute\(query, .*\)\.df\(\)$", text, re.M).group(0)
    scope = {"duckdb": duckdb, "query": query}
    exec(call, scope)  # the README's own line, run as written
    pixels = scope["pixels"]
    (row,) = np.flatnonzero((exact.metadata.subrun == 0) & (exact.metadata.event == 3))
    image = exact.image(int(row))["y"]
    rebuilt = np.zeros_like(image)
    rebuilt[pixels.wire.to_numpy(), pixels.time.to_numpy()] = pixels.value.to_numpy()
    assert len(pixels) == np.count_nonzero(image) > 0
    np.testing.assert_array_equal(rebuilt, image)


def test_the_readme_pyarrow_snippet_rebuilds_the_image(exact, monkeypatch):
    monkeypatch.chdir(Path(exact.path).parent)
    scope: dict = {}
    exec(_readme_block("pyarrow-image"), scope)
    (row,) = np.flatnonzero((exact.metadata.subrun == 0) & (exact.metadata.event == 3))
    np.testing.assert_array_equal(scope["image"], exact.image(int(row))["y"])


def test_float16_values_keep_every_pixel_within_the_stated_error(exact, half):
    assert half.schema.field("u_value").type.value_type == pa.float16()
    assert schema_info(half.schema)["values"] == "float16"
    assert _value_bytes(half.files[0]) < 0.6 * _value_bytes(exact.files[0])  # what float16 is for
    spec = exact.views["u"]
    worst = 0.0
    for i in range(len(exact)):
        a, b = exact.coo(i), half.coo(i)
        for view in a:
            assert b[view].values.dtype == np.float16
            for k in range(len(a[view].index)):
                np.testing.assert_array_equal(a[view].index[k], b[view].index[k])  # the same pixels
            x, y = a[view].values.astype(np.float64), b[view].values.astype(np.float64)
            assert x.min() >= spec.vmax / 10 and x.max() <= spec.vmax  # values in [cutoff, saturation]
            worst = max(worst, float(np.max(np.abs(y - x) / x)))
            rounded = _dense(a[view].index, a[view].shape, a[view].values.astype(np.float16))
            np.testing.assert_array_equal(half.image(i)[view], rounded)  # each value rounded once
    assert 0 < worst <= FLOAT16_RELATIVE_ERROR


def _value_bytes(part) -> int:
    """Compressed bytes of a part's value columns (metadata and coordinates are the same in both)."""
    md = pq.read_metadata(part)
    return sum(
        col.total_compressed_size
        for g in range(md.num_row_groups)
        for col in (md.row_group(g).column(c) for c in range(md.num_columns))
        if col.path_in_schema.split(".")[0].endswith("_value")
    )


def _dense(index, shape, values):
    out = np.zeros(shape, np.float32)
    out[index] = values
    return out


def test_float16_columns_read_back_in_duckdb_pandas_and_pyarrow(half):
    want = half.coo(0)["v"].values.astype(np.float32)
    first = half.files[0]
    with duckdb.connect() as con:  # its own: a partly fetched result blocks the default connection
        got_duckdb = con.execute("SELECT v_value FROM read_parquet($f) LIMIT 1", {"f": first}).fetchone()[0]
    got_pandas = pd.read_parquet(first, columns=["v_value"]).v_value.iloc[0]
    got_arrow = pq.read_table(first, columns=["v_value"])["v_value"][0].values.to_numpy()
    for got in (got_duckdb, got_pandas, got_arrow):
        np.testing.assert_array_equal(np.asarray(got, np.float32), want)


def test_float16_refuses_values_beyond_its_range():
    view = ViewSpec("grid", ("row", "col"), (4, 4))
    schema = build_schema({"grid": view}, {}, values="float16")
    image = Coo(
        (4, 4), (np.array([0, 1], np.uint8), np.array([2, 3], np.uint8)), np.array([1.0, 7e4], np.float32)
    )
    event = Event(EventId(1, 0, 1), 0, {}, {"grid": image})
    with pytest.raises(
        InputError, match=r"in\.h5.*view 'grid' channel 'value' holds 70000.*--values float16"
    ):
        events_to_table([event], "in.h5", schema)
    with pytest.raises(InputError, match="beyond float16"):
        batch_to_table(EventBatch.from_events([event]), "in.h5", schema)
    fine = Coo((4, 4), image.index, np.array([1.0, 6e4], np.float32))
    table = events_to_table([Event(EventId(1, 0, 1), 0, {}, {"grid": fine})], "in.h5", schema)
    assert table["grid_value"][0].as_py() == [1.0, 60000.0]
    assert views_of(table.schema)["grid"].coo_layout == "runs"


def test_eight_bit_codes_are_dictionary_encoded(source, events, tmp_path):
    reader = get_reader("microboone", **SMALL)
    schema = build_schema(reader.views(source), reader.metadata_fields(source), eight_bit=True)
    file = str(tmp_path / "eight.parquet")
    write_parquet(events_to_table(events, source, schema), file)
    md = pq.ParquetFile(file).metadata
    cols = {
        md.row_group(0).column(c).path_in_schema: md.row_group(0).column(c) for c in range(md.num_columns)
    }
    assert "RLE_DICTIONARY" in cols["y_value.list.element"].encodings


def test_runs_that_do_not_cover_the_values_are_a_damaged_part(exact, tmp_path):
    import json

    from nudask.errors import DatasetError
    from nudask.train.stream import Layout, Window

    copy = Path(shutil.copytree(exact.path, tmp_path / "bad.parquet"))
    part = copy / exact.manifest.files[0].name
    table = pq.read_table(part)
    lengths = table["y_time_length"].to_pylist()
    lengths[0][0] += 1  # one entry more than the values hold
    column = pa.array(lengths, table.schema.field("y_time_length").type)
    table = table.set_column(table.schema.get_field_index("y_time_length"), "y_time_length", column)
    pq.write_table(table, part, row_group_size=2)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["files"][0].update(bytes=part.stat().st_size, footer_sha256=None)
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"damaged.*view 'y'"):
        nudask.open_dataset(copy).coo(0)
    layout = Layout.of([str(part)])
    with pytest.raises(DatasetError, match="runs of view 'y' do not match its values"):
        Window(
            layout, np.arange(len(layout.rg_rows)), {"y": ["y_wire", "y_time", "y_time_length", "y_value"]}
        )


def test_float16_applies_to_floating_channels_of_dense_views_and_leaves_integers():
    frame = ViewSpec("frame", ("row", "col"), (2, 3), "float64", kind="dense")
    grid = ViewSpec("grid", ("row", "col"), (4, 4), channels=(("energy", "float32"), ("label", "int32")))
    schema = build_schema({"frame": frame, "grid": grid}, {}, values="float16")
    assert schema.field("frame_value").type.value_type == pa.float16()
    assert schema.field("grid_energy").type.value_type == pa.float16()
    assert schema.field("grid_label").type.value_type == pa.int32()
    pixels = np.array([[0.1, 0.0, 1234.5], [7.0, 0.0, 0.0]])
    labels = np.array([70000, 2], np.int32)  # integers are kept whatever their size
    coo = Coo.of((4, 4), (np.array([1, 1], np.uint8), np.array([0, 1], np.uint8)),
                 energy=np.array([3.3, 4.4], np.float32), label=labels)  # fmt: skip
    event = Event(EventId(1, 0, 1), 0, {}, {"frame": pixels, "grid": coo})
    for table in (events_to_table([event], "in.h5", schema),
                  batch_to_table(EventBatch.from_events([event]), "in.h5", schema)):  # fmt: skip
        assert table["frame_value"][0].as_py() == pixels.astype(np.float16).ravel().tolist()
        assert table["grid_label"][0].as_py() == [70000, 2]
        assert table["grid_col_length"][0].as_py() == [2]  # (1, 0) and (1, 1): one run
