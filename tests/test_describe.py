"""nudask.describe: counts, energies and bytes checked against independent computations."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import nudask
from nudask.describe import format_summary, plot_summary, sample_indices, summarize

SMALL = {"geometry": "small"}
SMALL_WIRES, SMALL_BINS = (240, 240, 346), -(-1280 // 6)


@pytest.fixture(scope="module")
def mb(tmp_path_factory, client):
    """Two simulated MicroBooNE files (7 + 5 events) and one unreadable input, skipped."""
    tmp = tmp_path_factory.mktemp("mb")
    files = [tmp / "bnb_00.h5", tmp / "bnb_01.h5"]
    nudask.simulate_microboone(files[0], n_events=7, seed=0, geometry="small")
    nudask.simulate_microboone(files[1], n_events=5, seed=1, geometry="small")
    bad = tmp / "bnb_02.h5"
    bad.write_bytes(b"not an hdf5 file")
    ds = nudask.preprocess(
        [*files, bad],
        out=tmp / "ds",
        reader="microboone",
        reader_options=SMALL,
        events_per_chunk=5,
        on_error="skip",
        progress=False,
        client=client,
    )
    return files, bad, ds


def truth(files, column):
    with_all = []
    for f in files:
        with h5py.File(f, "r") as h:
            with_all.append(h["event_table"][column][:, 0])
    return np.concatenate(with_all)


def stats(v):
    v = np.asarray(v, np.float64)
    return [v.size, v.mean(), np.median(v), v.std(), v.min(), v.max(), *np.percentile(v, [25, 75])]


def as_list(st):
    return [st[k] for k in ("n", "mean", "median", "std", "min", "max", "q25", "q75")]


def test_counts_match_event_table(mb):
    files, _, ds = mb
    s = summarize(ds, sample=3)
    json.loads(json.dumps(s))  # JSON-serialisable
    assert s["events"] == len(ds) == 12
    assert s["files"] == len(ds.files) == len(list(Path(ds.path).glob("part-*.parquet")))
    pdg, cc = truth(files, "nu_pdg"), truth(files, "is_cc")
    assert s["counts"]["nu_pdg"] == {str(k): v for k, v in Counter(pdg.tolist()).items()}
    assert s["counts"]["cc"] == {
        k: v for k, v in {"CC": int((cc == 1).sum()), "NC": int((cc == 0).sum())}.items() if v
    }
    flavour = {12: "nue", 14: "numu", 16: "nutau"}
    classes = Counter(f"{flavour[abs(p)]}_cc" if c else "nc" for p, c in zip(pdg, cc))
    assert s["counts"]["flavour"] == dict(classes)  # the reader's headline label comes first
    assert next(iter(s["counts"])) == "flavour"
    assert list(s["counts"]["flavour"].values()) == sorted(classes.values(), reverse=True)


def test_energy_stats_match_numpy(mb):
    files, _, ds = mb
    s = summarize(ds, sample=1)
    e, pdg, cc = truth(files, "nu_energy"), truth(files, "nu_pdg"), truth(files, "is_cc")
    assert s["energy"]["column"] == "nu_energy"
    np.testing.assert_allclose(as_list(s["energy"]["all"]), stats(e), rtol=1e-6)
    for code in np.unique(pdg):
        np.testing.assert_allclose(
            as_list(s["energy"]["by"]["nu_pdg"][str(code)]), stats(e[pdg == code]), rtol=1e-6
        )
    np.testing.assert_allclose(as_list(s["energy"]["by"]["cc"]["CC"]), stats(e[cc == 1]), rtol=1e-6)


def test_inputs_and_failures(mb):
    files, bad, ds = mb
    s = summarize(ds, sample=1)
    per_file = {os.path.basename(i["path"]): i for i in s["inputs"]}
    parts = Counter(os.path.basename(f).split("-")[1] for f in ds.files)  # part-{stem}-...
    assert {k: (v["events"], v["written"], v["parquet_files"]) for k, v in per_file.items()} == {
        "bnb_00.h5": (7, 7, parts["bnb_00"]),
        "bnb_01.h5": (5, 5, parts["bnb_01"]),
    }
    assert per_file["bnb_00.h5"]["size"] == os.path.getsize(files[0])
    assert [os.path.basename(f["path"]) for f in s["failed"]] == [bad.name]
    text = format_summary(s)
    assert "Failed (1)" in text and "bnb_02.h5" in text and "whole file" in text


def test_storage_bytes(mb, monkeypatch):
    _, _, ds = mb
    reads = []
    image = ds.image
    monkeypatch.setattr(ds, "image", lambda i: reads.append(i) or image(i))
    st = summarize(ds, sample=4)["storage"]
    assert len(reads) == 4 == st["png_sample_events"]  # only the sample is rendered
    assert reads == sorted(set(reads)) and reads == sample_indices(12, 4).tolist()
    on_disk = sum(os.path.getsize(f) for f in ds.files)
    dense_event = 4 * SMALL_BINS * sum(SMALL_WIRES)
    assert st["parquet_bytes"] == on_disk
    assert st["dense_per_event"] == dense_event == sum(a.nbytes for a in image(0).values())
    assert st["dense_bytes"] == 12 * dense_event
    assert st["dense_over_parquet"] == pytest.approx(12 * dense_event / on_disk)
    assert st["parquet_per_event"] == pytest.approx(on_disk / 12)
    # sparse tracks: 8-bit PNGs are far smaller than dense float32, but not empty
    assert 50 * 3 < st["png_per_event"] < dense_event / 20
    assert st["png_bytes"] == pytest.approx(12 * st["png_per_event"], abs=1)
    assert summarize(ds, sample=4)["storage"] == st  # deterministic sample


def test_format_summary_tables(mb):
    files, _, ds = mb
    s = summarize(ds, sample=2)
    text = format_summary(s)
    lines = text.splitlines()
    for code, n in Counter(truth(files, "nu_pdg").tolist()).items():
        assert any(line.split()[:2] == [str(code), str(n)] for line in lines)
    all_row = next(line for line in lines if line.startswith("all "))
    assert f"{s['energy']['all']['mean']:.3f}" in all_row
    assert "dense / Parquet" in text and f"{s['storage']['dense_over_parquet']:.1f}" in text
    header = next(i for i, line in enumerate(lines) if line.startswith("nu_energy"))
    assert set(lines[header + 1]) <= {"-", " "}  # aligned table with a rule under the header
    assert len({len(line) for line in lines[header + 2 : header + 4]}) == 1


def png_ok(path, min_size):
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_size[0] and im.height >= min_size[1]
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert pixels.var() > 0
    return pixels


def test_plot_summary(mb, tmp_path):
    _, _, ds = mb
    s = summarize(ds, sample=2)
    paths = plot_summary(ds, s, tmp_path / "plots")
    assert [p.name for p in paths] == ["storage.png", "energy.png"]
    for p in paths:
        pixels = png_ok(p, (600, 400))
        # coloured bars / histogram lines, not only black text on white
        assert np.any(np.ptp(pixels, axis=2) > 100)


def test_missing_columns_are_skipped(tmp_path, client):
    src = tmp_path / "bnb.h5"
    nudask.simulate_microboone(src, n_events=3, seed=2, geometry="small")
    with h5py.File(src, "a") as f:
        del f["event_table/nu_pdg"], f["event_table/nu_energy"]
    ds = nudask.preprocess(
        [src], out=tmp_path / "ds", reader="microboone", reader_options=SMALL, progress=False, client=client
    )
    s = summarize(ds, sample=2)
    assert set(s["counts"]) == {"cc"} and "energy" not in s
    text = format_summary(s)
    assert "nu_pdg" not in text and "True energy" not in text and "Events per cc" in text
    assert [p.name for p in plot_summary(ds, s, tmp_path / "plots")] == ["storage.png"]


def test_nova_classes(tmp_path, client):
    src = tmp_path / "neutrino1.h5"
    nudask.simulate_nova(src, n_events=60, seed=0)
    ds = nudask.preprocess(
        [src], out=tmp_path / "ds", reader="nova", events_per_chunk=30, progress=False, client=client
    )
    s = summarize(ds, sample=5)
    with h5py.File(src, "r") as f:
        code = f["neutrino/interaction"][:, 0].astype(int)
        energy = f["neutrino/nuenergy"][:, 0]
    current = np.select([code < 12, code < 14, code == 14], ["CC", "NC", "cosmic"], "other")
    assert s["counts"]["current"] == dict(Counter(current.tolist()))
    assert s["counts"]["cc"] == dict(Counter(np.where(code < 12, "CC", "not CC").tolist()))
    numu_cc = s["energy"]["by"]["flavour"].get("numu_cc")
    assert numu_cc is not None
    np.testing.assert_allclose(as_list(numu_cc), stats(energy[code <= 3]), rtol=1e-6)
    assert s["storage"]["dense_per_event"] == 2 * 100 * 80 * 4
    assert [p.name for p in plot_summary(ds, s, tmp_path / "plots")] == ["storage.png", "energy.png"]


def test_dataset_without_files(tmp_path):
    """Every chunk failed: no Parquet file, hence no schema; the report still says what happened."""

    from nudask.records import Failure, InputFile, Manifest

    folder = tmp_path / "ds"
    folder.mkdir()
    Manifest(
        reader="microboone", reader_options={}, settings={}, files=[],
        inputs=[InputFile("/data/a.h5", 10, 5)], failed=[Failure("/data/a.h5", "OSError: boom", 0, 5)],
    ).write(str(folder))  # fmt: skip
    ds = nudask.open_dataset(folder)

    s = summarize(ds)
    assert s["events"] == 0 and s["counts"] == {} and "energy" not in s
    assert s["inputs"][0]["failed_events"] == 5 and s["storage"]["dense_over_parquet"] is None
    assert "OSError: boom" in format_summary(s)
    assert [p.name for p in plot_summary(ds, s, tmp_path)] == ["storage.png"]
