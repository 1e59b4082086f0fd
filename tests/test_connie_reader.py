"""The CONNIE reader on simulated files: raw fpack images, calibration, extraction, crops, hitSumm."""

from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
import pytest

import nudask
from nudask.errors import InputError
from nudask.events import Chunk
from nudask.readers import get_reader, guess_reader
from nudask.readers.connie import CLASSES
from nudask.readers.connie.simulate import simulate
from nudask.testing import ReaderContract

SMALL = {"rows": 60, "cols": 90}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("connie"))
    raw = simulate(out, files=2, events=8, seed=4, **SMALL)
    return {
        "out": out,
        "raw": raw,
        "calibrated": sorted(glob.glob(os.path.join(out, "calibrated", "*.fits"))),
        "crops": sorted(glob.glob(os.path.join(out, "events", "*.fits"))),
        "catalog": os.path.join(out, "hitSumm_run125.root"),
    }


def one(reader, path, k=0):
    return next(iter(reader.read(Chunk(path, reader.name, k, k + 1))))


def test_raw_images_keep_their_adu_and_header_fields(tmp_path):
    from astropy.io import fits

    (path,) = simulate(str(tmp_path), files=1, events=4, seed=1, rows=20, cols=30, nsamp=1)
    assert guess_reader(path) == "connie"
    reader = get_reader("connie")
    ev = one(reader, path)
    with fits.open(path) as hdul:
        assert hdul[0].data is None and len(hdul) == 5
        assert isinstance(hdul[1], fits.CompImageHDU) and hdul[1].header["NSAMP"] == "1"
        for k in range(1, 5):
            image = ev.images[f"amp{hdul[k].header['CHID']}"]
            assert image.dtype == np.int32
            np.testing.assert_array_equal(image, hdul[k].data)
    assert ev.metadata["nsamp"] == 1 and ev.metadata["ncol"] == 7 + 30 + 20 and ev.metadata["nrow"] == 20
    assert ev.metadata["exposure"] == 3600.0 and list(ev.metadata["chid"]) == [1, 2, 3, 4]
    assert (ev.id.run, ev.id.subrun) == (125, 0)
    with pytest.raises(InputError, match="one-electron.*give -O gain="):
        one(get_reader("connie", calibrate=True), path)  # 1.2 e- of noise: no peaks to measure


def test_skipper_samples_are_averaged(sim):
    from astropy.io import fits

    ev = one(get_reader("connie"), sim["raw"][0])
    with fits.open(sim["raw"][0]) as hdul:
        raw = hdul[2].data
    assert raw.shape == (60, 117 * 64)
    np.testing.assert_array_equal(ev.images["amp2"], raw.reshape(60, -1, 64).mean(axis=2))


@pytest.mark.parametrize("baseline", ["overscan", "prescan", "median"])
def test_calibration_gives_the_electrons(sim, baseline):
    from astropy.io import fits

    ev = one(get_reader("connie", calibrate=True, baseline=baseline), sim["raw"][0])
    assert np.all((ev.metadata["gain"] > 150) & (ev.metadata["gain"] < 250))
    assert np.all(ev.metadata["noise"] < 0.2)  # 1.2 e- per sample / sqrt(64)
    for k, chid in enumerate(ev.metadata["chid"]):
        ideal = fits.getdata(sim["calibrated"][k])  # truth: the simulator's own pedestal and gain
        got = ev.images[f"amp{chid}"]
        assert got.shape == ideal.shape == (60, 90)
        # a row's baseline from 7 prescan pixels of 0.15 e- noise is off by about 0.07 e-
        assert np.median(np.abs(got - ideal)) < (0.1 if baseline == "prescan" else 0.05)
        assert abs(got.sum() - ideal.sum()) < 0.02 * ideal.sum() + 0.1 * got.size
        if baseline != "prescan":  # whole electrons counted as the truth's
            assert abs(np.rint(got).clip(0).sum() - np.rint(ideal).clip(0).sum()) < 0.02 * ideal.clip(0).sum()


def test_a_given_gain_is_used(sim):
    ev = one(get_reader("connie", calibrate=True, gain=[100, 200, 300, 400]), sim["raw"][0])
    np.testing.assert_array_equal(ev.metadata["gain"], [100, 200, 300, 400])
    free = one(get_reader("connie", calibrate=True), sim["raw"][0])
    np.testing.assert_allclose(
        ev.images["amp2"] * 200, free.images["amp2"] * free.metadata["gain"][1], rtol=1e-5, atol=1e-2
    )


def test_extraction_finds_the_simulated_particles(sim):
    reader = get_reader("connie", mode="events")
    for path in sim["raw"]:
        truth = pd.read_csv(path.replace(".fits.fz", ".truth.csv"))
        events = [ev for c in reader.chunks(path, 100) for ev in reader.read(c)]
        labels = sorted(CLASSES[int(ev.metadata["label"])] for ev in events if ev.metadata["label"] >= 0)
        assert len(events) == len(truth) and labels == sorted(truth["label"])
        for ev in events:  # the crop is the box padded by 30, cut at the image's edges
            m = ev.metadata
            assert ev.images["event"].shape == (
                min(m["y_max"] + 31, 60) - max(m["y_min"] - 30, 0),
                min(m["x_max"] + 31, 90) - max(m["x_min"] - 30, 0),
            )
        alpha = [ev for ev in events if ev.metadata["label"] == CLASSES.index("alpha")]
        assert all(ev.metadata["charge"] > 5e4 for ev in alpha)


def test_crops_and_catalog_agree(sim):
    reader = get_reader("connie", mode="events")
    catalog = [ev for c in reader.chunks(sim["catalog"], 5) for ev in reader.read(c)]
    crops = [one(reader, p) for p in sim["crops"]]
    assert len(catalog) == len(crops) == 16
    by_box = {(int(e.metadata["ohdu"]), int(e.metadata["x_min"]), int(e.metadata["y_min"])): e for e in crops}
    matched = 0
    for ev in catalog:
        key = (int(ev.metadata["ohdu"]), int(ev.metadata["x_min"]), int(ev.metadata["y_min"]))
        if key in by_box:
            other = by_box[key]
            assert other.metadata["label"] == ev.metadata["label"]
            assert np.isclose(
                other.metadata["charge"], ev.metadata["charge"], rtol=0.02
            )  # the catalog holds pixels above 0.64 e- only
            matched += 1
    assert matched >= 14
    with pytest.raises(InputError, match="holds events.*mode=events"):
        get_reader("connie").event_weights(sim["crops"][0])


def test_events_end_to_end_through_dask(sim, tmp_path, client):
    files = sim["crops"]
    ds = nudask.preprocess(files, tmp_path / "crops", reader="connie", reader_options={"mode": "events"},
                           events_per_chunk=6, client=client, progress=False)  # fmt: skip
    assert len(ds) == len(files) and len(ds.files) == 3  # many small files share a task
    assert ds.views["event"].kind == "dense"
    assert ds.roles.labels["particle"].classes == CLASSES
    reader = get_reader("connie", mode="events")
    for i, source in enumerate(ds.metadata["source_file"]):
        ev = one(reader, source)
        np.testing.assert_array_equal(ds.image(i, dtype=None)["event"], ev.images["event"])
        assert ds.metadata["label"][i] == ev.metadata["label"] >= 0
    raw = nudask.preprocess(sim["raw"], tmp_path / "raw", reader="connie", reader_options={"mode": "events"},
                            events_per_chunk=8, client=client, progress=False)  # fmt: skip
    assert len(raw) == 16 and sorted(raw.metadata["label"]) == sorted(ds.metadata["label"])


class TestRawContract(ReaderContract):
    @pytest.fixture
    def reader(self):
        return get_reader("connie", calibrate=True)

    @pytest.fixture
    def sample_file(self, sim):
        return sim["raw"][0]


class TestExtractionContract(ReaderContract):
    @pytest.fixture
    def reader(self):
        return get_reader("connie", mode="events", pad=10)

    @pytest.fixture
    def sample_file(self, sim):
        return sim["raw"][1]


class TestCatalogContract(ReaderContract):
    @pytest.fixture
    def reader(self):
        return get_reader("connie", mode="events")

    @pytest.fixture
    def sample_file(self, sim):
        return sim["catalog"]
