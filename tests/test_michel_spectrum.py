"""The Michel spectrum: toy MC of muon decay at rest, labelled clusters by connectivity, the plot."""

from __future__ import annotations

import json

import h5py
import numpy as np

import nudask
from nudask.michel.__main__ import main
from nudask.michel.spectrum import E_MAX, Detector, cluster_energies, compare, toy_spectrum
from nudask.readers.inss.simulate import MICHEL, write_files


def test_toy_follows_the_v_a_spectrum():
    toy = toy_spectrum(400_000, seed=1, detector=Detector(stochastic=0.0, constant=0.0, threshold=0.0))
    assert abs(E_MAX - 52.83) < 0.01
    x = toy["true"] / E_MAX
    assert x.min() >= 0 and x.max() <= 1
    # moments of 2 x^2 (3 - 2 x): <x> = 7/10, <x^2> = 8/15
    assert abs(x.mean() - 0.7) < 2e-3 and abs((x**2).mean() - 8 / 15) < 2e-3
    assert np.array_equal(toy["smeared"], toy["true"])  # no smearing, no threshold
    smeared = toy_spectrum(400_000, seed=1, detector=Detector(constant=0.1, threshold=10.0))["smeared"]
    assert smeared.min() >= 10.0 and smeared.max() > E_MAX  # smearing goes past the endpoint
    assert 0.6 < smeared.size / 400_000 < 0.99  # the threshold cut some decays


def test_clusters_by_26_connectivity_per_image():
    xyz = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [4, 2, 2], [0, 0, 0], [10, 0, 0], [11, 0, 0]])
    image = np.array([0, 0, 0, 0, 1, 1, 2])  # image 1's (0,0,0) is not image 0's; 1 and 2 apart
    e, img = cluster_energies(image, xyz, np.arange(1.0, 8.0))
    got = sorted(zip(img.tolist(), e.tolist()))
    assert got == [(0, 4.0), (0, 6.0), (1, 5.0), (1, 6.0), (2, 7.0)]


def test_compare_scores_a_sample_of_the_toy_as_compatible():
    det = Detector()
    toy = toy_spectrum(200_000, seed=2, detector=det)["smeared"]
    same = toy_spectrum(3000, seed=3, detector=det)["smeared"]
    shifted = same * 0.8
    ok, bad = compare(same, toy, threshold=det.threshold), compare(shifted, toy, threshold=det.threshold)
    assert ok["chi2_per_ndf"] < 2.0 and ok["ks_pvalue"] > 0.01
    assert bad["chi2_per_ndf"] > 5.0 and bad["ks_distance"] > 3 * ok["ks_distance"]
    assert sum(ok["clusters"]) == ok["n_clusters"] == int((same >= det.threshold).sum())


def test_spectrum_plot_of_a_labelled_dataset(tmp_path, client, capsys):
    xyze, labels, _ = write_files(str(tmp_path), images=10, seed=21)
    ds = nudask.preprocess(xyze, tmp_path / "ds", events_per_chunk=5, client=client, progress=False)
    out = tmp_path / "plot" / "spectrum.png"
    argv = ["spectrum", str(ds.path), "--out", str(out), "--toy-events", "200000", "--threshold", "1"]
    assert main(argv) == 0
    assert "Michel clusters in 10 images" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads(out.with_suffix(".json").read_text())
    with h5py.File(xyze) as f, h5py.File(labels) as g:
        michel_e = sum(
            float(a.reshape(-1, 4)[b == MICHEL, 3].sum()) for a, b in zip(f["data"][:], g["labels"][:])
        )
    assert info["n_clusters"] >= 1 and info["toy_events"] == 200_000 and info["images"] == 10
    # every Michel voxel is in one cluster: the clusters above threshold hold at most all of it
    assert 0.5 * michel_e < info["mean_clusters_mev"] * info["n_clusters"] <= michel_e + 1e-3


def test_spectrum_of_a_dataset_without_labels_is_a_clear_error(tmp_path, client, capsys):
    xyze = write_files(str(tmp_path), images=3, seed=4, labels=False, solution=False)[0]
    ds = nudask.preprocess(xyze, tmp_path / "ds", client=client, progress=False)
    assert main(["spectrum", str(ds.path), "--out", str(tmp_path / "s.png")]) == 2
    assert "no view 'voxels' with channels energy and label" in capsys.readouterr().err
