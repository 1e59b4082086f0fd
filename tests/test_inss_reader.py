"""The INSS "Find Michels" reader: vlen xyze + label HDF5 files, paired by name, end to end."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import nudask
from nudask.cli import main
from nudask.errors import InputError
from nudask.events import Chunk
from nudask.readers import get_reader, guess_reader
from nudask.readers.inss import INSSReader
from nudask.readers.inss.simulate import MICHEL, write_files, write_vlen
from nudask.testing import ReaderContract


class TestINSSReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return INSSReader()

    @pytest.fixture
    def sample_file(self, tmp_path):
        return write_files(str(tmp_path), images=7, seed=5)[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("inss")
    assert main(["simulate", str(out), "--format", "inss", "--events", "12", "--seed", "2"]) == 0
    return {kind: str(out / f"train_{kind}_12.h5") for kind in ("xyze", "label", "solution")}


def _truth(files):
    with h5py.File(files["xyze"]) as f, h5py.File(files["label"]) as g:
        return [a.reshape(-1, 4) for a in f["data"][:]], list(g["labels"][:])


def test_layout_is_the_challenge_one(files):
    with h5py.File(files["xyze"]) as f, h5py.File(files["label"]) as g, h5py.File(files["solution"]) as s:
        for d, base in ((f["data"], np.float32), (g["labels"], np.int32), (s["solution"], np.int32)):
            assert d.shape == (12,) and h5py.check_vlen_dtype(d.dtype) == np.dtype(base)
        data, labels, sol = f["data"][:], g["labels"][:], s["solution"][:]
    for a, lab, rows in zip(data, labels, sol):
        xyz = a.reshape(-1, 4)[:, :3]
        assert a.size == 4 * lab.size and np.all(xyz == np.round(xyz)) and xyz.max() < 768
        assert set(np.unique(lab)) <= {0, 1, 2, 3, 4}
        np.testing.assert_array_equal(rows, np.flatnonzero(lab == MICHEL))
    assert sum(len(r) for r in sol) > 0 and {0, 1} <= set(np.concatenate(labels).tolist())


def test_guess_and_label_pairing_by_name(files, tmp_path):
    assert guess_reader(files["xyze"]) == "inss"
    r = INSSReader()
    assert r.label_file(files["xyze"]) == files["label"]
    assert [c for c, _ in r.views(files["xyze"])["voxels"].channels] == ["energy", "label", "row"]
    alone = tmp_path / "challenge_xyze_12.h5"
    alone.write_bytes(open(files["xyze"], "rb").read())
    assert [c for c, _ in r.views(str(alone))["voxels"].channels] == ["energy", "row"]
    ev = next(r.read(Chunk(str(alone), "inss", 0, 1)))
    assert list(ev.images["voxels"].channels) == ["energy", "row"] and ev.metadata["n_michel"] == -1
    # named explicitly, under any name
    other = tmp_path / "whatever.h5"
    other.write_bytes(open(files["label"], "rb").read())
    named = get_reader("inss", labels=str(other))
    assert "label" in next(named.read(Chunk(str(alone), "inss", 0, 1))).images["voxels"].channels


def test_label_count_mismatch_is_a_clear_error(files, tmp_path):
    data, labels = _truth(files)
    write_vlen(str(tmp_path / "short_xyze_1.h5"), "data", [a.reshape(-1) for a in data[:5]], np.float32)
    write_vlen(str(tmp_path / "short_label_1.h5"), "labels", labels[:4], np.int32)
    with pytest.raises(InputError, match=r"short_label_1.h5.*4 images but .*short_xyze_1.h5.* has 5"):
        INSSReader().event_weights(str(tmp_path / "short_xyze_1.h5"))
    write_vlen(str(tmp_path / "short_label_1.h5"), "labels", [labels[0][:-1], *labels[1:5]], np.int32)
    with pytest.raises(InputError, match=r"image 0 has \d+ labels for \d+ voxels"):
        list(INSSReader().read(Chunk(str(tmp_path / "short_xyze_1.h5"), "inss", 0, 2)))
    with pytest.raises(InputError, match="nothere.h5.*no such label file"):
        INSSReader(labels=str(tmp_path / "nothere.h5")).event_weights(files["xyze"])


def test_bad_vlen_contents_are_input_errors(tmp_path):
    write_vlen(str(tmp_path / "odd_xyze_1.h5"), "data", [np.ones(6)], np.float32)
    with pytest.raises(InputError, match="image 0 has 6 values, not a multiple of 4"):
        list(INSSReader(labels="none").read(Chunk(str(tmp_path / "odd_xyze_1.h5"), "inss", 0, 1)))
    write_vlen(str(tmp_path / "far_xyze_1.h5"), "data", [np.array([1, 2, 800, 1.0])], np.float32)
    with pytest.raises(InputError, match="outside 0..767"):
        list(INSSReader(labels="none").read(Chunk(str(tmp_path / "far_xyze_1.h5"), "inss", 0, 1)))
    for name, xyz in (("half", [1, 2.5, 3]), ("negative_half", [-0.5, 2, 3])):
        write_vlen(str(tmp_path / f"{name}_xyze_1.h5"), "data", [np.array([*xyz, 1.0])], np.float32)
        with pytest.raises(InputError, match="image 0 has voxel indices that are not whole numbers"):
            list(INSSReader(labels="none").read(Chunk(str(tmp_path / f"{name}_xyze_1.h5"), "inss", 0, 1)))
    with h5py.File(tmp_path / "flat_xyze_1.h5", "w") as f:
        f["data"] = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="variable-length"):
        INSSReader().event_weights(str(tmp_path / "flat_xyze_1.h5"))


def test_dataset_keeps_rows_labels_and_energies(files, tmp_path):
    """Preprocessed on a local Dask cluster: each voxel's row, label and energy come back."""
    ds = nudask.preprocess(files["xyze"], tmp_path / "ds", events_per_chunk=5, progress=False)
    data, labels = _truth(files)
    assert len(ds) == 12 and ds.manifest.reader == "inss" and len(ds.files) == 3
    meta = ds.metadata
    for i in range(12):
        vox = ds.coo(i)["voxels"]
        assert vox.shape == (768, 768, 768) and list(vox.channels) == ["energy", "label", "row"]
        row = vox.channels["row"]
        np.testing.assert_array_equal(np.sort(row), np.arange(len(data[i])))  # every voxel once
        for axis in range(3):
            np.testing.assert_array_equal(vox.index[axis], data[i][row, axis].astype(int))
        np.testing.assert_array_equal(vox.channels["energy"], data[i][row, 3])
        np.testing.assert_array_equal(vox.channels["label"], labels[i][row])  # label 0 kept
        assert meta["n_michel"][i] == np.sum(labels[i] == MICHEL)
        np.testing.assert_allclose(meta["michel_energy"][i], data[i][labels[i] == MICHEL, 3].sum(), rtol=1e-5)
    assert (meta["has_michel"] == (meta["n_michel"] > 0)).all()


def test_packed_sort_and_its_fallback_give_the_same_order():
    from nudask.readers.inss import _c_order

    rng = np.random.default_rng(1)
    lengths = np.array([5, 0, 40, 1, 300])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ijk = rng.integers(0, 6, (offsets[-1], 3))  # duplicates: ties broken by row
    packed = _c_order(ijk, lengths, offsets, 768)
    fallback = _c_order(ijk, lengths, offsets, 2048)  # a grid too big to pack
    expect = np.concatenate(
        [a + np.lexsort((np.arange(b - a), *ijk[a:b, 2::-1].T)) for a, b in zip(offsets, offsets[1:])]
    )
    np.testing.assert_array_equal(packed[0], expect)
    np.testing.assert_array_equal(packed[0], fallback[0])
    np.testing.assert_array_equal(packed[1], expect - np.repeat(offsets[:-1], lengths))
    np.testing.assert_array_equal(packed[1], fallback[1])
