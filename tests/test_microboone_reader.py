"""MicroBooNE OpenSamples reader: the contract, the reference rendering, every quirk."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from nudask.errors import InputError
from nudask.events import Chunk
from nudask.readers import get_reader, guess_reader, row_blocks
from nudask.readers.microboone import MicroBooNEReader
from nudask.readers.row_blocks import RowBlocks, plain_deflate
from nudask.readers.wire_render import render_wire_plane
from nudask.simulate import simulate_microboone
from nudask.sparse import to_coo
from nudask.testing import ReaderContract


def read_all(reader, path):
    return [ev for c in reader.chunks(path, 4) for ev in reader.read(c)]


def reference_events(path, reader):
    """Dense per-plane images straight from h5py, the notebook way."""
    with h5py.File(path) as f:
        wt = f["wire_table"]
        adc, plane = wt["adc"][()], wt["local_plane"][:, 0]
        wire = wt["local_wire"][:, 0].astype(int)
        seq = wt["event_id.seq_cnt"][()]
        n = len(f["event_table/event_id"])
    offsets = np.concatenate([[0], np.cumsum(seq[:, 1])])
    rows = {int(e): range(offsets[k], offsets[k + 1]) for k, e in enumerate(seq[:, 0])}
    out = []
    for e in range(n):
        images = {}
        for p, view in enumerate("uvy"):
            dense = np.zeros((reader.geometry.wires[p], adc.shape[1]), np.float32)
            sel = np.array([r for r in rows.get(e, []) if plane[r] == p], int)
            if sel.size:
                dense[wire[sel]] = adc[sel]
            images[view] = to_coo(render_wire_plane(dense, reader.render))
        out.append(images)
    return out


def wire_table(path):
    """The wire_table's per-row columns and its seq_cnt index."""
    with h5py.File(path) as f:
        wt = f["wire_table"]
        cols = {k: wt[k][()] for k in ("adc", "local_plane", "local_wire", "event_id", "tpc")}
        return cols, wt["event_id.seq_cnt"][()]


def rewrite(path, group, **columns):
    """Replace columns of ``group`` (None deletes one)."""
    with h5py.File(path, "r+") as f:
        for name, data in columns.items():
            del f[group][name]
            if data is not None:
                f[group].create_dataset(name, data=data)


@pytest.fixture
def small():
    return MicroBooNEReader(geometry="small")


class TestMicroBooNEReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return MicroBooNEReader(geometry="small")

    @pytest.fixture
    def sample_file(self, bnb_files):
        return bnb_files[1]


def test_images_equal_the_dense_reference(small, bnb_files):
    path = bnb_files[0]
    events = read_all(small, path)
    for ev, ref in zip(events, reference_events(path, small), strict=True):
        assert ev.images == ref
    assert sum(ev.images["y"].nnz for ev in events) > 100  # tracks survive the cut


def test_truth_and_ids_come_from_event_table(small, bnb_files):
    path = bnb_files[0]
    events = read_all(small, path)
    with h5py.File(path) as f:
        ids = f["event_table/event_id"][()]
        energy = f["event_table/nu_energy"][:, 0]
        vtx = f["event_table/nu_vtx"][()]
    assert [tuple(int(x) for x in i) for i in ids] == [(e.id.run, e.id.subrun, e.id.event) for e in events]
    np.testing.assert_array_equal([e.metadata["nu_energy"] for e in events], energy)
    np.testing.assert_array_equal(np.stack([e.metadata["nu_vtx"] for e in events]), vtx)
    assert small.metadata_fields(path)["nu_vtx"] == ("<f4", (3,))
    assert small.metadata_fields(path)["is_cc"] == ("<i4", ())


def test_wire_rows_are_placed_by_local_wire_not_row_order(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[0], tmp_path / "reordered.h5")
    cols, seq = wire_table(path)
    # reverse the rows inside every event: same physics, other producer order
    order = np.concatenate(
        [np.arange(a, b)[::-1] for a, b in zip(np.cumsum(seq[:, 1]) - seq[:, 1], np.cumsum(seq[:, 1]))]
    )
    rewrite(path, "wire_table", **{k: v[order] for k, v in cols.items()})
    for a, b in zip(read_all(small, bnb_files[0]), read_all(small, str(path)), strict=True):
        assert a.images == b.images


def test_missing_wires_leave_zero_rows(small, tmp_path):
    path = str(
        simulate_microboone(
            tmp_path / "dead.h5", n_events=3, geometry="small", missing_wire_fraction=0.2, seed=5
        )
    )
    with h5py.File(path) as f:
        rows = f["wire_table/event_id.seq_cnt"][:, 1]
        present = set(zip(f["wire_table/local_plane"][:, 0], f["wire_table/local_wire"][:, 0]))
    assert np.all(rows < sum(small.geometry.wires))
    for ev in read_all(small, path):
        for p, view in enumerate("uvy"):
            coo = ev.images[view]
            assert all((p, float(w)) in present for w in np.unique(coo.index[0]))


def test_event_absent_from_wire_table_has_empty_images(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "gap.h5")
    cols, seq = wire_table(path)
    start = int(seq[:2, 1].sum())
    keep = np.ones(len(cols["adc"]), bool)
    keep[start : start + seq[2, 1]] = False  # event 2 loses all its wire rows
    rewrite(
        path,
        "wire_table",
        **{k: v[keep] for k, v in cols.items()},
        **{"event_id.seq_cnt": np.delete(seq, 2, axis=0)},
    )
    before, after = read_all(small, bnb_files[1]), read_all(small, str(path))
    assert [e.id for e in before] == [e.id for e in after]
    assert all(c.nnz == 0 for c in after[2].images.values())
    assert [e.images for k, e in enumerate(after) if k != 2] == [
        e.images for k, e in enumerate(before) if k != 2
    ]
    assert small.event_weights(str(path))[2] == 0


@pytest.mark.parametrize(
    "layout",
    [
        {"compression": "gzip", "shuffle": True},
        {"compression": "lzf"},
        {"chunks": (50, 320), "compression": "gzip"},  # chunks split the ticks too
        {},  # contiguous, uncompressed
    ],
)
def test_every_hdf5_layout_gives_the_same_events(small, bnb_files, tmp_path, layout):
    path = shutil.copy(bnb_files[1], tmp_path / "layout.h5")
    with h5py.File(path, "r+") as f:
        adc = f["wire_table/adc"][()]
        del f["wire_table/adc"]
        f["wire_table"].create_dataset("adc", data=adc, **layout)
        fast = plain_deflate(f["wire_table/adc"])
    assert fast == (layout.get("compression") == "gzip" and not layout.get("shuffle"))
    for a, b in zip(read_all(small, bnb_files[1]), read_all(small, str(path)), strict=True):
        assert a.images == b.images


def test_fast_path_inflates_each_chunk_once(bnb_files):
    with h5py.File(bnb_files[0]) as f:
        dset = f["wire_table/adc"]
        assert plain_deflate(dset)
        seq = f["wire_table/event_id.seq_cnt"][:, 1]
        bounds = np.concatenate([[0], np.cumsum(seq)])
        blocks = RowBlocks(dset)
        # blocks are views into reused buffers: copy each before reading on
        fast = np.concatenate([b.copy() for a, c in zip(bounds, bounds[1:]) for _, b in blocks.blocks(a, c)])
        np.testing.assert_array_equal(fast, dset[()])
        assert blocks.inflated == -(-dset.shape[0] // dset.chunks[0])


def test_s64_strings_become_text(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "strings.h5")
    with h5py.File(path, "r+") as f:
        n = len(f["event_table/event_id"])
        f["event_table"].create_dataset("generator", data=np.array([[b"genie"]] * n, "S64"))
    events = read_all(small, str(path))
    assert small.metadata_fields(str(path))["generator"] == ("str", ())
    assert {e.metadata["generator"] for e in events} == {"genie"}


def test_guess_reader_and_unknown_reader():
    assert get_reader("microboone", geometry="small").geometry.name == "small"
    with pytest.raises(ValueError, match="installed readers: .*microboone.*nova"):
        get_reader("larcv")


def test_guess_picks_microboone(bnb_files, nova_file):
    assert guess_reader(bnb_files[0]) == "microboone"
    assert guess_reader(nova_file) == "nova"


# -- bad inputs: one line naming the file and the problem -------------------------------
def test_nowire_file(small, tmp_path):
    path = simulate_microboone(tmp_path / "bnb_NoWire_00.h5", n_events=2, geometry="small", with_wire=False)
    with pytest.raises(InputError, match=r"bnb_NoWire_00.h5.*no 'wire_table'.*WithWire"):
        small.event_weights(str(path))


@pytest.mark.parametrize("column", ["adc", "local_wire", "event_id.seq_cnt"])
def test_missing_column(small, bnb_files, tmp_path, column):
    path = shutil.copy(bnb_files[1], tmp_path / "nocol.h5")
    rewrite(path, "wire_table", **{column: None})
    with pytest.raises(InputError, match=rf"nocol.h5.*{column}"):
        small.event_weights(str(path))


def test_missing_event_table(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "noev.h5")
    with h5py.File(path, "r+") as f:
        del f["event_table"]
    with pytest.raises(InputError, match="noev.h5.*no 'event_table'"):
        small.event_weights(str(path))


def test_wrong_shapes(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "flat.h5")
    with h5py.File(path) as f:
        wire = f["wire_table/local_wire"][:, 0]
    rewrite(path, "wire_table", local_wire=wire)  # (N,) instead of (N, 1)
    with pytest.raises(InputError, match=r"flat.h5.*local_wire.*expected \(N, k\)"):
        small.event_weights(str(path))


def test_geometry_mismatch_says_what_to_pass(bnb_files):
    with pytest.raises(InputError, match="1280 ticks.*6400.*geometry="):
        MicroBooNEReader().event_weights(bnb_files[0])


def test_seq_cnt_disagreeing_with_rows(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "short.h5")
    with h5py.File(path) as f:
        seq = f["wire_table/event_id.seq_cnt"][()]
    seq[-1, 1] += 5
    rewrite(path, "wire_table", **{"event_id.seq_cnt": seq})
    with pytest.raises(InputError, match="short.h5.*seq_cnt counts"):
        small.event_weights(str(path))


def test_duplicate_wire_rows(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "dup.h5")
    with h5py.File(path) as f:
        wire = f["wire_table/local_wire"][()]
        plane = f["wire_table/local_plane"][()]
    second = np.flatnonzero(plane[:, 0] == plane[0, 0])[1]
    wire[second] = wire[0]
    rewrite(path, "wire_table", local_wire=wire)
    with pytest.raises(InputError, match="dup.h5.*event 0: wire .* has two rows"):
        list(small.read(Chunk(str(path), "microboone", 0, 1)))


def test_corrupt_chunk_is_an_input_error(small, bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "corrupt.h5")
    with h5py.File(path) as f:
        info = f["wire_table/adc"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # scribble over the first compressed chunk
        fh.seek(info.byte_offset + 10)
        fh.write(b"\xff" * 64)
    with pytest.raises(InputError, match="corrupt.h5.*cannot read events"):
        list(small.read(Chunk(str(path), "microboone", 0, 2)))


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole-chunk"])
def test_row_blocks_match_h5py_in_any_order(bnb_files, tmp_path, monkeypatch, stream):
    """Streamed pieces (a chunk inflated piece by piece, going on across calls) and whole chunks
    give h5py's rows for forward, overlapping, backward and chunk-crossing ranges, also over a
    chunk never written (the fill value) and one stored uncompressed."""
    path = shutil.copy(bnb_files[0], tmp_path / "mixed.h5")
    with h5py.File(path, "r+") as f:
        dset = f["wire_table/adc"]
        rows = dset.chunks[0]
        raw = dset[rows : 2 * rows].astype(dset.dtype)
        dset.id.write_direct_chunk((rows, 0), raw.tobytes(), filter_mask=1)  # chunk 1: deflate skipped
    with h5py.File(path) as f:
        dset = f["wire_table/adc"]
        n, rows = dset.shape[0], dset.chunks[0]
        whole = dset[()]
        # pieces of 7 rows: several within a chunk, ranges ending within a piece
        monkeypatch.setattr(row_blocks, "PIECE_BYTES", 7 * dset.shape[1] * dset.dtype.itemsize)
        blocks = RowBlocks(dset, stream=stream, band_rows=rows)
        assert blocks.stream is stream
        ranges = [(0, 5), (5, rows + 7), (rows + 7, n), (3, 9), (0, n), (n - 2, n), (rows - 1, rows + 1)]
        for a, b in ranges:
            got = np.concatenate([blk.copy() for _, blk in blocks.blocks(a, b)])
            np.testing.assert_array_equal(got, whole[a:b], err_msg=f"rows {a}-{b}")
            starts = [r for r, _ in blocks.blocks(a, b)]
            assert starts[0] == a and starts == sorted(starts)
        blocks.finish()


def test_a_streamed_chunk_is_checked_to_its_end_before_the_last_event(
    small, bnb_files, tmp_path, monkeypatch
):
    """A chunk whose checksum is wrong (its last 4 bytes) inflates to the right rows until its
    end: streamed, a task's last event is handed out only once the chunk it ends in was
    inflated to its end and its checksum checked."""
    path = shutil.copy(bnb_files[1], tmp_path / "adler.h5")
    with h5py.File(path, "r+") as f:
        dset = f["wire_table/adc"]
        rows, piece = dset.chunks[0], 10  # pieces of 10 rows: this file's chunks are 200 rows
        monkeypatch.setattr(row_blocks, "PIECE_BYTES", piece * dset.shape[1] * dset.dtype.itemsize)
        ends = np.cumsum(f["wire_table/event_id.seq_cnt"][:, 1])
        # an event ending early in a chunk: more than two pieces of it are never asked for
        k = next(k for k, e in enumerate(ends) if 0 < e % rows < rows - 2 * piece and e < dset.shape[0])
        offset = (ends[k] // rows * rows, 0)
        mask, data = dset.id.read_direct_chunk(offset)
        dset.id.write_direct_chunk(offset, data[:-4] + bytes(b ^ 0xFF for b in data[-4:]), filter_mask=mask)
    with pytest.raises(InputError, match="adler.h5.*cannot read events.*incorrect data check"):
        list(small.read(Chunk(str(path), "microboone", k, k + 1)))


def test_file_without_events(small, tmp_path):
    path = tmp_path / "bnb_WithWire_00.h5"
    with h5py.File(path, "w") as f:
        for table in ("event_table", "wire_table"):
            g = f.create_group(table)
            g.create_dataset("event_id", shape=(0, 3), dtype="i4")
            g.create_dataset("event_id.seq_cnt", shape=(0, 2), dtype="i8")
        for col, width in (("local_plane", 1), ("local_wire", 1), ("adc", 1280)):
            f["wire_table"].create_dataset(col, shape=(0, width), dtype="f4")
    with pytest.raises(InputError, match="bnb_WithWire_00.h5.*holds no events"):
        small.event_weights(str(path))
