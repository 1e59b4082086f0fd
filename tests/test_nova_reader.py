"""NOvA-like pixel maps: the contract, the view decoding, the derived labels."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import nudask
from nudask.errors import InputError
from nudask.readers.nova import NOvAReader, derived_labels
from nudask.sparse import to_dense
from nudask.testing import ReaderContract


class TestNOvAReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return NOvAReader()

    @pytest.fixture
    def sample_file(self, nova_file):
        return nova_file


def events(path):
    r = NOvAReader()
    return [ev for c in r.chunks(path, 16) for ev in r.read(c)]


def test_views_are_decoded_as_two_by_100_by_80(nova_file):
    with h5py.File(nova_file) as f:
        maps = f["cvnmap"][()]
    right = maps.reshape(-1, 2, 100, 80)
    wrong = maps.reshape(-1, 100, 80, 2)  # what some student code did: mixes the views
    evs = events(nova_file)
    for k, ev in enumerate(evs):
        np.testing.assert_array_equal(to_dense(ev.images["xz"], dtype=np.uint8), right[k, 0])
        np.testing.assert_array_equal(to_dense(ev.images["yz"], dtype=np.uint8), right[k, 1])
    assert any(not np.array_equal(to_dense(e.images["xz"]), wrong[k, ..., 0]) for k, e in enumerate(evs))
    assert evs[0].images["xz"].values.dtype == np.uint8
    assert evs[0].images["xz"].index[0].dtype == np.uint8  # 100 planes fit in a byte


def test_metadata_keep_source_names_and_values(nova_file):
    evs = events(nova_file)
    with h5py.File(nova_file) as f:
        nu = {k: d[:, 0] for k, d in f["neutrino"].items()}
    for k, ev in enumerate(evs):
        assert ev.id.run == nu["run"][k] and ev.id.subrun == nu["subrun"][k]
        for name in (
            "nuenergy",
            "lepenergy",
            "interaction",
            "finalstate",
            "vtxz",
            "rec.training.trainingdata_idx",
        ):
            assert ev.metadata[name] == nu[name][k]
    assert "run" not in evs[0].metadata  # carried by the event id


def test_derived_labels_for_every_interaction_code():
    codes = np.arange(16)
    d = derived_labels(codes, np.zeros(16))
    assert d["is_cc"].tolist() == [1] * 12 + [0] * 4
    assert d["flavour"].tolist()[:12] == ["numu"] * 4 + ["nue"] * 4 + ["nutau"] * 4
    assert [d["mode"][c] for c in (0, 4, 8)] == ["QE"] * 3
    assert [d["mode"][c] for c in (1, 5, 9)] == ["RES"] * 3
    assert [d["mode"][c] for c in (2, 6, 10)] == ["DIS"] * 3
    assert d["current"].tolist()[12:] == ["NC", "NC", "cosmic", "other"]
    fs = derived_labels(np.zeros(6), np.array([0, 7, 15, 16 + 9, 32 + 14, 48]))
    assert fs["n_tracks"].tolist() == [0, 1, 3, 2, 3, -1]
    assert fs["n_showers"].tolist() == [0, 3, 3, 1, 2, -1]


def test_simulated_sample_is_mostly_numu_cc(nova_file):
    evs = events(nova_file)
    numu_cc = np.mean([e.metadata["interaction"] <= 3 for e in evs])
    assert 0.7 < numu_cc < 0.98
    assert {e.metadata["mode"] for e in evs} & {"QE", "RES", "DIS"}


def test_preprocess_and_read_back(nova_file, tmp_path, client):
    ds = nudask.preprocess([nova_file], tmp_path / "nova", reader="nova", progress=False)
    with h5py.File(nova_file) as f:
        maps = f["cvnmap"][()].reshape(-1, 2, 100, 80)
    assert len(ds) == len(maps)
    img = ds.image(7)
    np.testing.assert_array_equal(img["xz"], maps[7, 0].astype(np.float32))
    assert ds.metadata.loc[7, "mode"] in {"QE", "RES", "DIS", "other", "NC", "nue-elastic", "cosmic"}
    assert ds.schema.field("xz_value").type.value_type == "uint8"


def test_wrong_cvnmap_width(nova_file, tmp_path):
    path = shutil.copy(nova_file, tmp_path / "neutrino2.h5")
    with h5py.File(path, "r+") as f:
        data = f["cvnmap"][:, :8000]
        del f["cvnmap"]
        f["cvnmap"] = data
    with pytest.raises(InputError, match=r"neutrino2.h5.*cvnmap has shape \(40, 8000\)"):
        NOvAReader().event_weights(str(path))


def test_missing_code_column(nova_file, tmp_path):
    path = shutil.copy(nova_file, tmp_path / "neutrino3.h5")
    with h5py.File(path, "r+") as f:
        del f["neutrino/interaction"]
    with pytest.raises(InputError, match="neutrino3.h5.*lacks column 'interaction'"):
        NOvAReader().event_weights(str(path))
