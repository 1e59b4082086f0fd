"""The compiled wire kernel against the numpy reference, bit for bit, on every quirk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from nudask.errors import ConfigError, InputError
from nudask.events import Chunk
from nudask.readers.microboone import MicroBooNEReader
from nudask.readers.row_blocks import RowBlocks
from nudask.readers.wire_kernel import EventRender
from nudask.readers.wire_render import WireRender, render_wire_samples
from nudask.simulate import simulate_microboone

# the reference's float32 rounding of a float64 sum beyond float32's range warns (the kernel agrees: inf)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


def assert_same_bits(a, b):
    """Two COO images identical: shape, index values and dtypes, value bits."""
    assert a.shape == b.shape
    assert [i.dtype for i in a.index] == [i.dtype for i in b.index]
    for i, j in zip(a.index, b.index, strict=True):
        np.testing.assert_array_equal(i, j)
    assert a.values.dtype == b.values.dtype == np.float32
    np.testing.assert_array_equal(a.values.view(np.uint32), b.values.view(np.uint32))


def read_both(path, **options):
    """Every event of ``path`` read with the kernel and with the reference (chunks of 4 events)."""
    out = []
    for kernel in ("numba", "numpy"):
        reader = MicroBooNEReader(geometry="small", kernel=kernel, **options)
        out.append([ev for c in reader.chunks(path, 4) for ev in reader.read(c)])
    return out


def assert_kernel_matches_reference(path, **options):
    fast, ref = read_both(path, **options)
    assert len(fast) == len(ref) > 0
    for a, b in zip(fast, ref):
        assert a.id == b.id
        for view in "uvy":
            assert_same_bits(a.images[view], b.images[view])
    return ref


def quirky_values(rng, ticks):
    """Rows of samples at the cut-off and saturation, bipolar, -0.0 and summation-order traps."""
    thr, ceil = np.float32(10), np.float32(100)
    width = max(ticks, 72)
    rows = np.zeros((8, width), np.float32)
    rows[0, 0] = thr  # exactly the cut-off: kept
    rows[0, 6] = np.nextafter(thr, np.float32(0))  # just below: cut
    rows[0, 12] = ceil  # exactly the ceiling
    rows[0, 18] = np.nextafter(ceil, np.float32(1000))  # just above: clipped
    rows[0, 24:30] = [-50, 60, 0, 0, 0, 0]  # bipolar pair summing to the cut-off
    rows[1, 30:36] = [-0.0, -0.0, 12, 0, 0, 0]  # -0.0 is no sample
    rows[1, 36:42] = [-20, -5, 0, 0, 0, 0]  # negative block: cut
    rows[1, 42:48] = [5, -5, 0, 0, 0, 0]  # non-zero samples summing to 0: no entry
    rows[1, 54] = np.float32(10.2)  # under cutoff=10.2 kept: numpy compares in float32 (10.19999981)
    # float64 order matters: add.reduceat gives 1e20 + (((20 + 20) - 1e20) + 30) = 0, not 30
    rows[2, 48:53] = [1e20, 20, 20, -1e20, 30]
    rows[4] = rng.normal(0, 40, width).astype(np.float32) * (rng.random(width) < 0.05)
    rows[5, 60:66] = [1e38, 1e38, 1e38, 1e38, 0, 0]  # float32 overflow when rounded: +inf, clipped
    rows[6] = (2.0 ** rng.uniform(-30, 30, width) * rng.choice([-1, 1], width)).astype(np.float32)
    rows[7, ::7] = 1.75  # blocks of one or two samples
    rows = rows[:, :ticks].copy()
    rows[3, -2:] = 40  # the partial last block
    return rows


@pytest.fixture(scope="module")
def quirk_file(bnb_files, tmp_path_factory):
    """bnb_files[1] with quirky values written into rows of several events."""
    path = str(shutil.copy(bnb_files[1], tmp_path_factory.mktemp("quirks") / "quirks.h5"))
    with h5py.File(path, "r+") as f:
        adc = f["wire_table/adc"]
        rng = np.random.default_rng(7)
        for r0 in (0, 700, adc.shape[0] - 8):
            adc[r0 : r0 + 8] = quirky_values(rng, adc.shape[1])
    return path


# -- the reader, both ways, on the files the reader tests build -------------------------
def test_simulated_files_shuffled_rows_shared_chunks_partial_block(bnb_files):
    for path in bnb_files:  # rows shuffled, a few dead wires, chunks of 200 rows span events
        ref = assert_kernel_matches_reference(path)
        assert sum(ev.images["y"].nnz for ev in ref) > 100


@pytest.mark.parametrize("piece_rows", [1, 7, 201])
def test_streamed_pieces_match_h5py_reads(quirk_file, monkeypatch, piece_rows):
    """Chunks inflated in pieces of 1, 7 or 201 rows (pieces that cross events, and one
    larger than the 200-row chunks), rendered by the kernel, against h5py's own reads
    rendered by the reference."""
    from nudask.readers import row_blocks

    monkeypatch.setattr(row_blocks, "PIECE_BYTES", piece_rows * 1280 * 4)
    reader = MicroBooNEReader(geometry="small")
    streamed = [ev for c in reader.chunks(quirk_file, 3) for ev in reader.read(c)]
    plain = MicroBooNEReader(geometry="small", kernel="numpy", fast_inflate=False)
    ref = [ev for c in plain.chunks(quirk_file, 3) for ev in plain.read(c)]
    assert len(streamed) == len(ref) > 0
    for a, b in zip(streamed, ref):
        for view in "uvy":
            assert_same_bits(a.images[view], b.images[view])


def test_quirky_values(quirk_file):
    ref = assert_kernel_matches_reference(quirk_file)
    values = np.concatenate([ev.images[v].values for ev in ref for v in "uvy"])
    assert values.min() == 10 and values.max() == 100  # the cut-off and ceiling themselves survive


@pytest.mark.parametrize(
    "options",
    [
        {"factor": 1},
        {"factor": 7},
        {"factor": 12, "cutoff": -5.3},
        {"cutoff": 10.2},
        {"factor": 130},
        {"saturation": 0},
    ],
)
def test_other_settings(quirk_file, options):
    assert_kernel_matches_reference(quirk_file, **options)  # factor 130 falls back to the reference


def test_many_missing_wires(tmp_path):
    path = simulate_microboone(tmp_path / "dead.h5", n_events=3, geometry="small", missing_wire_fraction=0.2)
    assert_kernel_matches_reference(str(path))


@pytest.mark.parametrize(
    "layout",
    [
        {"compression": "gzip", "shuffle": True},
        {"compression": "lzf"},
        {"chunks": (50, 320), "compression": "gzip"},  # chunks split the ticks too
        {"chunks": (64, 1280), "compression": "gzip"},  # bands unaligned with events
        {},  # contiguous, uncompressed
    ],
)
def test_every_layout(quirk_file, tmp_path, layout):
    path = shutil.copy(quirk_file, tmp_path / "layout.h5")
    with h5py.File(path, "r+") as f:
        adc = f["wire_table/adc"][()]
        del f["wire_table/adc"]
        f["wire_table"].create_dataset("adc", data=adc, **layout)
    assert_kernel_matches_reference(str(path))


def test_uncompressed_and_never_written_chunks(quirk_file, tmp_path):
    path = shutil.copy(quirk_file, tmp_path / "holes.h5")
    with h5py.File(path, "r+") as f:
        adc = f["wire_table/adc"][()]
        del f["wire_table/adc"]
        dset = f["wire_table"].create_dataset(
            "adc", adc.shape, "f4", chunks=(200, adc.shape[1]), compression="gzip", fillvalue=3
        )
        for r0 in range(0, adc.shape[0], 200):
            if r0 == 400:
                continue  # never written: reads as the fill value, 3 per tick, 18 per block
            if r0 == 200:  # stored as it is: filter mask bit 0 says deflate was skipped
                rows = np.zeros((200, adc.shape[1]), np.float32)
                rows[: min(200, adc.shape[0] - r0)] = adc[r0 : r0 + 200]
                dset.id.write_direct_chunk((r0, 0), rows.tobytes(), filter_mask=1)
                continue
            dset[r0 : r0 + 200] = adc[r0 : r0 + 200]
        assert dset.id.get_chunk_info_by_coord((400, 0)).byte_offset is None
    ref = assert_kernel_matches_reference(str(path))
    assert any(np.any(ev.images[v].values == 18) for ev in ref for v in "uvy")


def test_duplicate_wire_message(bnb_files, tmp_path):
    path = shutil.copy(bnb_files[1], tmp_path / "dup.h5")
    with h5py.File(path, "r+") as f:
        wire, plane = f["wire_table/local_wire"], f["wire_table/local_plane"][:, 0]
        second = np.flatnonzero(plane == plane[0])[1]
        wire[second] = wire[0]
        p, w = int(plane[0]), int(wire[0, 0])
    for kernel in ("numba", "numpy"):
        reader = MicroBooNEReader(geometry="small", kernel=kernel)
        with pytest.raises(InputError, match=rf"dup.h5.*event 0: wire {w} of plane {p} has two rows"):
            list(reader.read(Chunk(str(path), "microboone", 0, 1)))
    # a duplicate leaves the kernel's slot table clean for the next event
    events = list(MicroBooNEReader(geometry="small").read(Chunk(str(path), "microboone", 1, 3)))
    assert [e.index for e in events] == [1, 2]


def test_unknown_kernel_is_refused():
    with pytest.raises(ConfigError, match="kernel must be one of"):
        MicroBooNEReader(kernel="cuda")


# -- the kernel alone ------------------------------------------------------------------
@pytest.mark.parametrize("factor", [1, 6, 9, 16, 64, 129])
@pytest.mark.parametrize("ticks", [1283, 64, 5])
def test_kernel_equals_render_wire_samples(factor, ticks):
    rng = np.random.default_rng(factor * 1000 + ticks)
    wires = (5, 7, 300)
    rows = np.concatenate([quirky_values(rng, ticks), quirky_values(rng, ticks)])
    plane = np.repeat([0, 1, 2], [5, 5, 6])
    wire = np.array([4, 0, 2, 3, 1, 6, 0, 5, 2, 3, 299, 0, 17, 18, 100, 250])  # shuffled, gaps
    settings = WireRender(factor)
    render = EventRender(wires, ticks, settings)
    render.bin_buf, render.value_buf = render.bin_buf[:1], render.value_buf[:1]  # forces growth
    for _ in range(2):  # the second event reuses every buffer
        render.start(rows.shape[0])
        for r0 in (0, 3, 11):  # rows arrive in blocks
            render.scan(rows[r0 : {0: 3, 3: 11, 11: 16}[r0]], r0)
        images = render.images(plane, wire)
        for p, nw in enumerate(wires):
            sel = plane == p
            w, t = np.nonzero(rows[sel])
            ref = render_wire_samples(wire[sel][w], t, rows[sel][w, t], (nw, ticks), settings)
            assert_same_bits(images[p], ref)
    assert render.bin_buf.size >= sum(im.nnz for im in images)


def test_buffers_are_reused_event_after_event(bnb_files):
    with h5py.File(bnb_files[0]) as f:
        dset = f["wire_table/adc"]
        seq = f["wire_table/event_id.seq_cnt"][:, 1]
        bounds = np.concatenate([[0], np.cumsum(seq)])
        blocks = RowBlocks(dset)
        render = EventRender((240, 240, 346), dset.shape[1], WireRender())
        addresses = set()
        for a, b in zip(bounds, bounds[1:]):
            render.start(b - a)
            for row0, block in blocks.blocks(a, b):
                addresses.add(block.base.ctypes.data)  # the array owning the band's memory
                render.scan(block, row0 - a)
        assert blocks.inflated > 3
        assert len(addresses) == 1  # every band inflated into one buffer
        buffers = render.bin_buf.ctypes.data, render.seg_start.ctypes.data
        render.start(int(seq[0]))
        assert (render.bin_buf.ctypes.data, render.seg_start.ctypes.data) == buffers


@pytest.mark.slow
def test_compiled_code_is_cached_on_disk(bnb_files, tmp_path):
    """A second process loads the kernel from NUMBA_CACHE_DIR instead of compiling it."""
    script = textwrap.dedent(
        f"""
        from nudask.events import Chunk
        from nudask.readers.microboone import MicroBooNEReader
        from nudask.readers import wire_kernel
        list(MicroBooNEReader(geometry="small").read(Chunk({bnb_files[0]!r}, "microboone", 0, 2)))
        stats = wire_kernel.scan_rows.stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    (hits0, misses0), (hits1, misses1) = (tuple(map(int, r.stdout.split())) for r in runs)
    assert (hits0, misses0) == (0, 1) and (hits1, misses1) == (1, 0)
    assert any(name.endswith(".nbi") for _, _, files in os.walk(tmp_path / "numba") for name in files)
