"""DUNE supernova cluster NPZ batches: the contract, every generation, widths, bad input, end to end."""

from __future__ import annotations

import glob

import numpy as np
import pytest

import nudask
from nudask.cli import main
from nudask.describe import summarize
from nudask.errors import InputError
from nudask.readers import guess_reader
from nudask.readers.dune_sn import DuneSNReader
from nudask.readers.dune_sn_layout import FIELDS, GENERATIONS
from nudask.simulate.dune_sn import PITCH, draw, simulate_dune_sn
from nudask.testing import ReaderContract


@pytest.fixture(scope="module")
def gen_files(tmp_path_factory):
    """One batch (U, V, X) per generation, widths 16 and 32 alternating: 15 files, 12 clusters each."""
    out = tmp_path_factory.mktemp("dune_sn")
    return simulate_dune_sn(out, files=15, events=12, seed=5, generation="mixed", width="mixed")


def events(path):
    r = DuneSNReader()
    return [ev for c in r.chunks(path, 5) for ev in r.read(c)]


class TestDuneSNReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return DuneSNReader()

    @pytest.fixture
    def sample_file(self, gen_files):
        return gen_files[-1]  # the 18-column generation: every column filled


def test_every_generation_maps_to_the_named_columns(gen_files):
    seen = set()
    for path in gen_files:
        with np.load(path) as f:
            images, meta = f["images"], f["metadata"]
        names = GENERATIONS[meta.shape[1]]
        seen.add(meta.shape[1])
        for k, ev in enumerate(events(path)):
            assert set(ev.metadata) == set(FIELDS)
            for j, name in enumerate(names):
                if name in ("plane_id", "is_marley", "is_main_track", "is_es_interaction", "cluster_event",
                            "match_id"):  # fmt: skip
                    assert ev.metadata[name] == int(meta[k, j]), name
                else:
                    assert ev.metadata[name] == meta[k, j], name
            derived = {
                "generation",
                "plane",
                "width",
                "interaction",
                "true_dir_x",
                "true_dir_y",
                "true_dir_z",
            }
            for name in set(FIELDS) - set(names) - derived:
                assert ev.metadata[name] is None, (meta.shape[1], name)  # a column the generation lacks
            d = np.array([ev.metadata[f"true_dir_{a}"] for a in "xyz"], np.float64)
            assert abs(np.linalg.norm(d) - 1) < 1e-5  # given (11, 12) or from the momentum (13+)
            if "true_mom_x" in names:
                mom = np.array([ev.metadata[f"true_mom_{a}"] for a in "xyz"], np.float64)
                np.testing.assert_allclose(d, mom / np.linalg.norm(mom), atol=1e-6)
            assert ev.metadata["plane"] == "UVX"[int(meta[k, names.index("plane_id")])]
            es = ev.metadata["is_es_interaction"]
            assert ev.metadata["interaction"] == ("unknown" if es is None else ("ES" if es else "CC"))
            np.testing.assert_array_equal(ev.images["cluster"].values, images[k][images[k] != 0])
            assert ev.images["cluster"].shape == images.shape[1:]
    assert seen == set(GENERATIONS)


def test_the_metadata_match_the_picture(gen_files):
    """cluster_energy is the ADC sum over the plane's factor; main tracks span more channels."""
    spans = {0: [], 1: []}
    for path in gen_files[6:]:  # generations 13+ carry cluster_energy
        with np.load(path) as f:
            images = f["images"]
        for ev, img in zip(events(path), images):
            factor = 3600.0 if ev.metadata["plane"] == "X" else 900.0
            assert ev.metadata["cluster_energy"] == pytest.approx(
                img.sum(dtype=np.float64) / factor, rel=1e-5
            )
            spans[int(ev.metadata["is_main_track"])].append(int((img > 0).any(0).sum()))
    assert np.mean(spans[1]) > 2 * np.mean(spans[0])


def test_pentagons_keep_the_plane_threshold_and_the_maximum():
    # two TPs on channels 5 and 6 overlapping in time, plus one more on channel 5 (overlap: max)
    tps = np.array([[5, 10, 8, 3, 400.0], [6, 12, 6, 2, 200.0], [5, 14, 6, 3, 500.0]])
    img = draw(tps, "X", 16)
    cols = np.flatnonzero(img.any(0))
    assert cols.size == 2 and cols[0] == (16 - 2) // 2  # consecutive channels, centred
    col = img[:, cols[0]]
    on = np.flatnonzero(col)
    assert col[on[0]] == 60.0 and col.max() == 500.0  # the threshold plateau, the larger peak
    assert img[:, cols[1]][np.flatnonzero(img[:, cols[1]])[0]] == 60.0
    assert draw(tps, "U", 16)[:, cols[1]].max() == 200.0 and draw(tps, "U", 16)[on[0], cols[0]] == 70.0
    assert (np.flatnonzero(img.any(1)).mean() - 63.5) ** 2 < 4  # centred in time


def test_widths_and_names(gen_files, tmp_path):
    assert {DuneSNReader().views(p)["cluster"].shape for p in gen_files} == {(128, 16), (128, 32)}
    assert guess_reader(gen_files[0]) == "dune_sn"
    other = simulate_dune_sn(tmp_path, files=3, events=2, naming="basename", generation=14)
    assert [p.rsplit("/", 1)[1] for p in other] == [f"prod_sn_0000_plane{p}.npz" for p in "UVX"]
    runs = {ev.id.run for p in other for ev in events(p)}
    assert len(runs) == 1  # one batch's planes share the run; subrun is the plane
    assert PITCH["X"] @ np.array([0, 0, 1.0]) == 1


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"images": np.zeros((3, 128, 16), np.float32), "metadata": np.zeros((3, 15), np.float32)},
         r"'metadata' has 15 columns, a layout nudask does not know"),
        ({"images": np.zeros((3, 128, 16), np.float32), "metadata": np.zeros((4, 12), np.float32)},
         r"'images' holds 3 clusters but 'metadata' 4 rows"),
        ({"images": np.zeros((3, 128, 16), np.float64), "metadata": np.zeros((3, 12), np.float32)},
         r"'images' is float64, expected float32"),
        ({"images": np.zeros((3, 128, 16), np.float32), "metadata": np.zeros((3, 12), np.int32)},
         r"'metadata' is int32, expected float32"),
        ({"images": np.zeros((3, 64, 16), np.float32), "metadata": np.zeros((3, 12), np.float32)},
         r"shape \(3, 64, 16\)"),
        ({"images": np.zeros((3, 128, 16), np.float32)}, r"no 'metadata' array"),
    ],
)  # fmt: skip
def test_bad_batches_are_one_line_input_errors(tmp_path, arrays, problem):
    path = _write(tmp_path / "clusters_planeX_batch0000.npz", **arrays)
    with pytest.raises(InputError, match=problem) as err:
        DuneSNReader().event_weights(path)
    assert "clusters_planeX_batch0000.npz" in str(err.value) and "\n" not in str(err.value)


def test_an_npy_is_not_an_npz(tmp_path):
    path = tmp_path / "clusters_planeX_batch0001.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 128, 16), np.float32))
    with pytest.raises(InputError, match="batch0001.npz.*not an NPZ"):
        DuneSNReader().event_weights(str(path))


def test_preprocess_describe_open_dataset(tmp_path, client):
    raw = tmp_path / "raw"
    assert main(["simulate", str(raw), "--format", "dune_sn", "--files", "6", "--events", "30",
                 "-O", "generation=12,18", "-O", "width=16,32"]) == 0  # fmt: skip
    files = sorted(glob.glob(str(raw / "*.npz")))
    ds = nudask.preprocess(files, tmp_path / "ds", events_per_chunk=64, client=client, progress=False)
    assert len(ds) == 180 and ds.manifest.reader == "dune_sn"
    assert ds.views["cluster"].shape == (128, 32)  # the largest; each cluster keeps its own
    meta = ds.metadata
    assert set(meta["generation"]) == {12, 18} and set(meta["plane"]) == {"U", "V", "X"}
    assert meta.loc[meta.generation == 12, "match_id"].isna().all()
    assert meta.loc[meta.generation == 18, "match_id"].notna().all()
    for i in range(0, 180, 17):
        source, row = meta["source_file"][i], int(meta["event_index"][i])
        with np.load(source) as f:
            want = f["images"][row]
        got = ds.image(i)["cluster"]
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)  # raw ADC, exactly
    s = summarize(ds, sample=3)
    assert (
        s["counts"]["main_track"]
        == meta["is_main_track"].map({0: "background", 1: "main track"}).value_counts().to_dict()
    )
    assert s["energy"]["unit"] == "MeV"
    assert ds.roles.vectors["direction"].columns == ("true_dir_x", "true_dir_y", "true_dir_z")
    assert main(["describe", str(tmp_path / "ds")]) == 0
