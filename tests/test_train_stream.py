"""The streaming input: order, shuffling, windows, batches equal to the stored images, bounded memory."""

from __future__ import annotations

import gc
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from test_train_data import microboone_dataset, quick_config

from nudask.dataset import open_dataset
from nudask.train.data import load_data
from nudask.train.stream import Window


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


def source(mb, tmp_path, split="train", **input_):
    cfg = quick_config(mb, tmp_path, input={"buffer_events": 16, "batch_size": 4, **input_})
    data = load_data(cfg)
    return data, data.source(split)


def epoch_order(src, epoch):
    src.set_epoch(epoch)
    return np.concatenate([src.batch_rows(i) for i in range(len(src))])


def test_every_event_once_per_epoch_and_order_reproducible(mb, tmp_path):
    data, src = source(mb, tmp_path)
    rows = data.rows("train")
    e0, e1 = epoch_order(src, 0), epoch_order(src, 1)
    assert sorted(e0.tolist()) == rows.tolist() and sorted(e1.tolist()) == rows.tolist()
    assert not np.array_equal(e0, e1)  # another epoch, another order
    assert np.array_equal(epoch_order(src, 0), e0)  # back to epoch 0: the same order
    _, again = source(mb, tmp_path)  # a new source (another process, a resumed run)
    assert np.array_equal(epoch_order(again, 1), e1)
    other = load_data(
        quick_config(mb, tmp_path, input={"buffer_events": 16, "batch_size": 4}, train={"seed": 5})
    ).source("train")
    assert not np.array_equal(epoch_order(other, 0), e0)  # another seed
    assert not np.array_equal(e0, np.sort(e0))  # shuffled at all


def test_shuffle_buffer_windows_are_bounded_and_contiguous(mb, tmp_path):
    data, src = source(mb, tmp_path, buffer_events=16)
    plan = src.plan
    assert len(plan.windows) > 2
    biggest_group = int(data.layout.rg_rows.max())
    for w, groups in enumerate(plan.windows):
        pos = np.flatnonzero(plan.window == w)
        assert pos.size <= 16 + biggest_group  # events of the window held at once
        assert np.array_equal(pos, np.arange(pos[0], pos[-1] + 1))  # read once, then left
        assert set(data.layout.group_of(plan.order[pos])) == set(groups.tolist())
    test = data.source("test")
    assert np.array_equal(test.plan.order, data.rows("test"))  # evaluation: storage order


def test_batches_equal_the_stored_images(mb, tmp_path):
    ds = open_dataset(mb)
    data, src = source(mb, tmp_path, crop="none", views=None)
    for i in (0, len(src) - 1):
        x, y = src.batch(i)
        for k, row in enumerate(src.batch_rows(i)):
            ref = ds.image(int(row))
            for v in ("u", "v", "y"):
                np.testing.assert_allclose(x[v][k, ..., 0], ref[v] / 100, rtol=1e-6)
            assert y[k, 0] == data.y[row]


@pytest.mark.parametrize("crop", ["fixed", "vertex", "centroid"])
def test_crops(mb, tmp_path, crop):
    ds = open_dataset(mb)
    data, src = source(mb, tmp_path, crop=crop, crop_size=[40, 30], crop_origin=[100, 50], views=["y"])
    x, _ = src.batch(0)
    assert x["y"].shape == (4, 40, 30, 1)
    for k, row in enumerate(src.batch_rows(0)):
        full = ds.image(int(row))["y"] / 100
        if crop == "fixed":
            r0, c0 = 100, 50
        else:
            if crop == "vertex":
                m = data.meta.iloc[row]
                centre = (m["nu_vtx_wire_pos"][2], m["nu_vtx_wire_time"] / 6)
            else:
                rr, cc = np.nonzero(full)
                w = full[rr, cc]
                centre = ((rr * w).sum() / w.sum(), (cc * w).sum() / w.sum())
            r0 = int(np.clip(np.rint(centre[0] - 20), 0, full.shape[0] - 40))
            c0 = int(np.clip(np.rint(centre[1] - 15), 0, full.shape[1] - 30))
        np.testing.assert_allclose(x["y"][k, ..., 0], full[r0 : r0 + 40, c0 : c0 + 30], rtol=1e-6)
        if crop != "fixed":
            assert x["y"][k].sum() > 0


def test_downsampling_and_log_scaling(mb, tmp_path):
    ds = open_dataset(mb)
    _, src = source(mb, tmp_path, crop="none", views=["u"], downsample=[2, 4], scale="log", scale_factor=1.0)
    x, _ = src.batch(0)
    full = ds.image(int(src.batch_rows(0)[0]))["u"]  # 240 x 214
    summed = np.pad(full, ((0, 0), (0, 2))).reshape(120, 2, 54, 4).sum(axis=(1, 3))
    assert x["u"].shape[1:3] == (120, 54)
    np.testing.assert_allclose(x["u"][0, ..., 0], np.log1p(summed), rtol=1e-5)


def test_eight_bit_values_are_decoded(mb, tmp_path_factory, tmp_path):
    coded = microboone_dataset(tmp_path_factory, eight_bit=True)
    kw = {"crop": "vertex", "crop_size": [40, 40], "batch_size": 8}
    x8 = load_data(quick_config(coded, tmp_path, input=kw)).source("test").batch(0)[0]
    x = load_data(quick_config(mb, tmp_path, input=kw)).source("test").batch(0)[0]
    for v in ("u", "v", "y"):
        assert x8[v].dtype == np.float32 and x8[v].max() <= 1.0 + 1e-6
        np.testing.assert_allclose(x8[v], x[v], atol=0.5 / 255 + 1e-6)  # half an 8-bit step


def test_parallel_batches_equal_sequential_ones(mb, tmp_path):
    _, src = source(mb, tmp_path, crop="vertex", crop_size=[32, 32])
    src.set_epoch(3)
    seq = [{k: v.copy() for k, v in src.batch(i)[0].items()} for i in range(len(src))]
    _, fresh = source(mb, tmp_path, crop="vertex", crop_size=[32, 32])
    fresh.set_epoch(3)
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda i: {k: v.copy() for k, v in fresh.batch(i)[0].items()}, range(len(src))))
    for a, b in zip(seq, par):
        for v in a:
            np.testing.assert_array_equal(a[v], b[v])


def test_balancing(mb, tmp_path):
    for mode in ("undersample", "oversample"):
        cfg = quick_config(
            mb, tmp_path, task={"balance": mode, "select": "abs(nu_pdg) == 12 or event % 2 == 0"}
        )
        data = load_data(cfg)
        src = data.source("train")
        order = epoch_order(src, 0)
        counts = np.bincount(data.y[order].astype(int))
        assert counts[0] == counts[1]
        assert not np.array_equal(np.sort(order), np.sort(epoch_order(src, 1))) or mode == "oversample"
    data = load_data(quick_config(mb, tmp_path, task={"balance": "class_weights"}))
    _x, y, w = data.source("train").batch(0)
    rows = data.rows("train")
    n1 = (data.y[rows] == 1).sum()
    assert np.allclose(w[y[:, 0] == 1], rows.size / (2 * n1))


_POOLS = []  # Arrow buffers keep a pointer to their pool: it must outlive them all


def _peak(src, epochs=1):
    """Peak bytes held while streaming: numpy (tracemalloc) plus Arrow's allocator."""
    gc.collect()
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    _POOLS.append(pool)
    old = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        for e in range(epochs):
            src.set_epoch(e)
            for i in range(len(src)):
                src.batch(i)
        return tracemalloc.get_traced_memory()[1] + pool.max_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(old)


def test_memory_is_bounded_by_the_buffer_not_the_dataset(tmp_path_factory, tmp_path):
    cfg = quick_config(
        microboone_dataset(tmp_path_factory, n_events=80),
        tmp_path,
        input={
            "buffer_events": 8,
            "batch_size": 4,
            "crop": "fixed",
            "crop_size": [16, 16],
            "views": ["u", "v", "y"],
            "max_queue_size": 1,
            "workers": 1,
        },
        split={"test": 0.1, "validation": 0.0},
    )
    data = load_data(cfg)
    rows = data.rows("train")
    assert rows.size >= 16 * 8  # the dataset is many times the buffer

    def make(n):
        src = data.source("train")
        src.rows = rows[:n]
        src.epoch = -1
        return src

    small, big = make(24), make(rows.size)
    _peak(make(8))  # warm up: first-use allocations of numpy, pyarrow and the reader
    p_small, p_big = _peak(small), _peak(big, epochs=2)
    sparse_total = sum(Window(data.layout, g, data.columns).nbytes for g in big.plan.windows)
    assert big.cache.loads > 16  # every window read, held a while, dropped
    assert p_big < 1.3 * p_small + 2e6, (p_small, p_big)  # flat: 5x the events, same peak
    assert big.cache.peak_bytes < sparse_total / 3  # the stream never holds much of the dataset
    assert p_big < 8e6  # the rest is the reader's scratch and a few 16 x 16 batches


def test_pages_are_checked_once_per_process_and_a_damaged_page_is_caught(mb, tmp_path):
    import shutil

    import pyarrow as pa

    from nudask.train import stream

    data, src = source(mb, tmp_path)
    src.set_epoch(0)
    for i in range(len(src)):
        src.batch(i)
    groups = {g for g, _ in src.layout.verified}
    assert groups == set(data.layout.group_of(data.rows("train")).tolist())  # every group read, checked
    # a page flipped on disk: the first read of that row group in a process fails loudly
    copy = shutil.copytree(mb, tmp_path / "damaged")
    part = sorted(copy.glob("part-*.parquet"))[0]
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    part.write_bytes(bytes(raw))
    layout = stream.Layout.of(sorted(str(p) for p in copy.glob("part-*.parquet")))
    first_file_groups = np.flatnonzero(layout.rg_file == 0)
    with pytest.raises((OSError, pa.ArrowException)):
        stream.Window(layout, first_file_groups, src.columns)
