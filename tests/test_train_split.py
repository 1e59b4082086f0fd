"""The train/validation/test split: a hash of (run, subrun, event), whatever the file order."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_train_data import microboone_dataset, quick_config

from nudask.train import split
from nudask.train.data import load_data


def ids(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 10_000, n), rng.integers(0, 500, n), rng.integers(0, 10**9, n)


def test_fractions_within_tolerance():
    run, subrun, event = ids(200_000)
    code = split.assign(run, subrun, event, test=0.25, validation=0.2)
    frac = np.bincount(code, minlength=3) / code.size
    assert np.allclose(frac, [0.75 * 0.8, 0.75 * 0.2, 0.25], atol=0.005)


def test_same_event_same_split_in_any_order_and_company():
    run, subrun, event = ids(5000)
    code = split.assign(run, subrun, event)
    perm = np.random.default_rng(1).permutation(5000)
    assert np.array_equal(split.assign(run[perm], subrun[perm], event[perm]), code[perm])
    alone = [int(split.assign([r], [s], [e])[0]) for r, s, e in zip(run[:50], subrun[:50], event[:50])]
    assert alone == code[:50].tolist()


def test_splits_are_disjoint_and_cover_everything():
    run, subrun, event = ids(3000)
    code = split.assign(run, subrun, event)
    sets = [set(zip(run[code == k], subrun[code == k], event[code == k])) for k in range(3)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == len(set(zip(run, subrun, event)))


def test_ids_all_matter_and_the_seed_reshuffles():
    n = 4000
    base = split.uniform(np.ones(n), np.ones(n), np.arange(n))
    assert not np.array_equal(base, split.uniform(np.full(n, 2), np.ones(n), np.arange(n)))
    assert not np.array_equal(base, split.uniform(np.ones(n), np.full(n, 2), np.arange(n)))
    other = split.assign(np.ones(n), np.ones(n), np.arange(n), seed=1)
    assert (other != split.assign(np.ones(n), np.ones(n), np.arange(n))).mean() > 0.2


def test_bad_fractions():
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        split.assign([1], [1], [1], test=1.0)


def test_dataset_split_does_not_depend_on_file_order_or_chunking(tmp_path_factory, tmp_path):
    path = microboone_dataset(tmp_path_factory)
    shuffled = tmp_path / "reversed.parquet"
    shutil.copytree(path, shuffled)
    manifest = json.loads((shuffled / "_manifest.json").read_text())
    manifest["files"] = manifest["files"][::-1]
    (shuffled / "_manifest.json").write_text(json.dumps(manifest))
    a = load_data(quick_config(path, tmp_path))
    b = load_data(quick_config(str(shuffled), tmp_path))
    c = load_data(quick_config(microboone_dataset(tmp_path_factory, events_per_chunk=13), tmp_path))
    assert a.meta["subrun"].iloc[0] != b.meta["subrun"].iloc[0]  # the rows really are in another order
    assert len(a.layout.files) != len(c.layout.files)

    def by_split(data):
        return {
            name: {tuple(r) for r in data.meta.iloc[data.rows(name)][["run", "subrun", "event"]].to_numpy()}
            for name in ("train", "validation", "test")
        }

    sa, sb, sc = by_split(a), by_split(b), by_split(c)
    assert sa == sb == sc
    assert all(sa.values()) and sum(map(len, sa.values())) == 80
