"""The stream without Keras: the sharding rule, numpy batches, the torch adapter, the Grain form."""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_train_data import microboone_dataset, quick_config

from nudask.errors import ConfigError
from nudask.train.data import load_data
from nudask.train.iterate import BatchRecords, NumpyBatches
from nudask.train.shard import Shard, n_batches, rank_slice
from nudask.train.torch_data import assignment

RANKS, WORKERS = 2, 2


@pytest.fixture(scope="module")
def mb(tmp_path_factory):
    return microboone_dataset(tmp_path_factory)


def load(mb, tmp_path, task=None, **input_):
    kw = {"buffer_events": 16, "batch_size": 8, **input_}
    return load_data(quick_config(mb, tmp_path, input=kw, task=task or {}))


def reference(source, epoch):
    """Rows and contents of every batch of one rank, one worker: the order to match."""
    out = []
    for i, (x, y) in enumerate(NumpyBatches(source, epoch=epoch, copy=True)):
        out.append((source.batch_rows(i, epoch=epoch), x, y))
    return out


def sharded(data, epoch, start=0):
    """{global batch: [rank 0's part, rank 1's]} made by 2 ranks x 2 batch workers."""
    got: dict = {}
    for rank, worker in itertools.product(range(RANKS), range(WORKERS)):
        src = data.source("train", shard=Shard(rank, RANKS))
        batches = NumpyBatches(src, epoch=epoch, start=start, worker=worker, workers=WORKERS, copy=True)
        for i, (x, y) in zip(batches.batches, batches):
            got.setdefault(i, [None] * RANKS)[rank] = (src.batch_rows(i), x, y)
    return got


def assert_same_as_one_rank(got, ref, first=0):
    assert sorted(got) == list(range(first, len(ref)))  # every batch once, none twice
    for i in range(first, len(ref)):
        rows, x, y = ref[i]
        assert np.array_equal(np.concatenate([part[0] for part in got[i]]), rows)
        for k in x:  # the events' images and targets, in the order of one rank
            np.testing.assert_array_equal(np.concatenate([part[1][k] for part in got[i]]), x[k])
        np.testing.assert_array_equal(np.concatenate([part[2] for part in got[i]]), y)


@pytest.mark.parametrize(
    "n_events, batch, world, workers, start",
    [(54, 8, 2, 2, 0), (54, 8, 4, 3, 2), (64, 16, 4, 2, 1), (15, 6, 3, 1, 0), (7, 7, 1, 4, 0)],
)
def test_the_sharding_rule_gives_every_position_once_in_the_global_order(
    n_events, batch, world, workers, start
):
    """Pure Python: ranks x DataLoader workers, read back the way the loaders yield them."""
    total = n_batches(n_events, batch)
    seen = []
    for i in range(start, total):  # each step: every rank's loader yields batch i next
        for rank in range(world):
            mine = [
                w for w in range(workers) if i in assignment(total, start=start, worker=w, workers=workers)
            ]
            assert len(mine) == 1 and mine[0] == (i - start) % workers  # one worker, in turn
            lo, hi = rank_slice(i, n_events, batch, Shard(rank, world))
            assert hi > lo  # no rank has an empty step
            seen.extend(range(lo, hi))
    assert seen == list(range(start * batch, n_events))


def test_a_global_batch_the_ranks_cannot_share_is_refused(mb, tmp_path):
    data = load(mb, tmp_path, batch_size=6)
    with pytest.raises(ConfigError, match="input.batch_size 6 is not divisible by the world size 4"):
        data.source("train", shard=Shard(0, 4))
    with pytest.raises(ConfigError, match="rank 2 of world 2"):
        Shard(2, 2)
    n = data.rows("train").size
    batch = next(b for b in range(4, n, 4) if 0 < n % b < 4)  # a last batch of 1-3 events
    data = load(mb, tmp_path, batch_size=batch)
    with pytest.raises(ConfigError, match="fewer than the 4 ranks.*drop_remainder"):
        data.source("train", shard=Shard(0, 4))
    kept = data.source("train", shard=Shard(3, 4), drop_remainder=True)
    assert len(kept) == n // batch and all(kept.batch_rows(i).size == batch // 4 for i in range(len(kept)))


def test_numpy_batches_two_workers_by_two_ranks_equal_one_by_one(mb, tmp_path):
    # flips and quarter turns too: an event draws the same on any number of ranks
    data = load(mb, tmp_path, augment=["flip_rows", "flip_cols", "rot90"])
    ref = reference(data.source("train"), epoch=1)
    assert sorted(np.concatenate([r[0] for r in ref]).tolist()) == data.rows("train").tolist()
    assert_same_as_one_rank(sharded(data, epoch=1), ref)


def test_balanced_epochs_shard_the_same_resampled_order(mb, tmp_path):
    data = load(mb, tmp_path, task={"balance": "oversample", "select": "abs(nu_pdg) == 12 or event % 2 == 0"})
    ref = reference(data.source("train"), epoch=2)
    counts = np.bincount(np.concatenate([r[2][:, 0] for r in ref]).astype(int))
    assert counts[0] == counts[1]  # balanced, repeats included
    assert_same_as_one_rank(sharded(data, epoch=2), ref)


def test_a_pass_resumed_at_a_step_on_more_ranks_sees_the_rest_of_the_epoch(mb, tmp_path):
    data = load(mb, tmp_path)
    ref = reference(data.source("train"), epoch=3)
    step = 3
    assert_same_as_one_rank(sharded(data, epoch=3, start=step), ref, first=step)
    before = NumpyBatches(data.source("train"), epoch=3, stop=step)  # the steps before the kill
    after = NumpyBatches(data.source("train"), epoch=3, start=step)
    assert len(before) == step and len(after) == len(ref) - step


def test_numpy_batches_stay_in_the_source_s_buffers(mb, tmp_path):
    data = load(mb, tmp_path)
    src = data.source("train")
    ring = src.ring
    buffers = {id(x["u"].base) for x, _ in NumpyBatches(src, epoch=0, threads=2)}
    assert 1 < len(buffers) <= ring  # reused: memory of a few batches, not of the epoch
    assert src.cache.peak_bytes > 0 and src.cache.loads == len(src.plan.windows)  # each window read once


def test_nothing_here_imports_a_framework():
    code = (
        "import sys, nudask.train.iterate, nudask.train.torch_data, nudask.train.data; "
        "print(sorted({'keras', 'tensorflow', 'torch', 'jax'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.slow  # importing torch and starting its worker processes: several seconds
def test_torch_dataloader_two_workers_by_two_ranks_equal_one_by_one(mb, tmp_path, monkeypatch):
    import torch.utils.data as torch_data  # in the test extra (torch==2.13.0)

    from nudask.train.torch_data import TorchStream

    data = load(mb, tmp_path, augment=["flip_rows"])
    ref = reference(data.source("train"), epoch=1)
    start = 1
    got: dict = {}
    for rank in range(RANKS):
        stream = TorchStream(data.source("train"), epoch=0, rank=rank, world=RANKS)
        stream.set_epoch(1, start=start)  # resumed at global step 1
        loader = torch_data.DataLoader(stream, batch_size=None, num_workers=WORKERS)
        out = list(loader)
        assert len(out) == len(stream) == len(ref) - start
        for i, (x, y) in enumerate(out, start):
            rows = stream.source.batch_rows(i, epoch=1)
            got.setdefault(i, [None] * RANKS)[rank] = (rows, {k: v.numpy() for k, v in x.items()}, y.numpy())
    assert_same_as_one_rank(got, ref, first=start)
    # the rank and world size of a torch.distributed process group, when one is up
    import torch.distributed as dist

    for name, value in (("is_initialized", True), ("get_rank", 1), ("get_world_size", 2)):
        monkeypatch.setattr(dist, name, lambda value=value: value)
    assert TorchStream(data.source("train")).source.shard == Shard(1, 2)
    monkeypatch.undo()
    # in the main process (no workers) the tensors own their memory: the buffers are reused
    whole = list(torch_data.DataLoader(TorchStream(data.source("train"), epoch=1), batch_size=None))
    for (x, y), (_, rx, ry) in zip(whole, ref):
        np.testing.assert_array_equal(x["u"].numpy(), rx["u"])
        np.testing.assert_array_equal(y.numpy(), ry)


def test_batch_records_are_the_run_s_batches_across_epochs(mb, tmp_path):
    data = load(mb, tmp_path)
    src = data.source("train", shard=Shard(1, 2))
    per_epoch = len(src)
    records = BatchRecords(src, epochs=3, start=per_epoch + 2)  # resumed at epoch 1, step 2
    assert len(records) == 2 * per_epoch - 2
    again = pickle.loads(pickle.dumps(records))  # how a Grain worker process gets it
    expect = [src.batch_rows(i, epoch=e) for e in (1, 2) for i in range(per_epoch)][2:]
    with ThreadPoolExecutor(4) as pool:  # readers ask for records from several threads at once
        got = list(pool.map(lambda k: again[k], range(len(again))))
    ys = {int(r): float(v) for r, v in zip(data.rows("train"), data.y[data.rows("train")])}
    for rows, (x, y) in zip(expect, got):
        assert x["u"].shape[0] == rows.size and y[:, 0].tolist() == [ys[int(r)] for r in rows]
    x, _ = records[0]
    np.testing.assert_array_equal(got[0][0]["u"], x["u"])
    with pytest.raises(IndexError, match="out of range"):
        records[len(records)]
