"""The simulators write exactly the public layouts (formats.md sections 1 and 2)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from nudask.cli import main
from nudask.errors import ConfigError
from nudask.events import Chunk
from nudask.readers import get_reader
from nudask.readers.wire_geometry import get_geometry
from nudask.simulate import simulate_microboone, simulate_nova

SMALL = get_geometry("small")
I4, F4, S64 = np.dtype("int32"), np.dtype("float32"), np.dtype("S64")
# formats.md section 1, written out independently of the simulator's own schema
MICROBOONE = {
    "event_table": {
        "is_cc": (I4, 1),
        "nu_pdg": (I4, 1),
        "nu_energy": (F4, 1),
        "lep_energy": (F4, 1),
        "nu_dir": (F4, 3),
        "nu_vtx": (F4, 3),
        "nu_vtx_corr": (F4, 3),
        "nu_vtx_wire_pos": (I4, 3),
        "nu_vtx_wire_time": (F4, 1),
    },
    "wire_table": {"tpc": (I4, 1), "local_plane": (I4, 1), "local_wire": (F4, 1), "adc": (F4, SMALL.ticks)},
    "hit_table": {
        "hit_id": (I4, 1),
        "integral": (F4, 1),
        "rms": (F4, 1),
        "tpc": (I4, 1),
        "local_plane": (I4, 1),
        "local_wire": (I4, 1),
        "local_time": (F4, 1),
    },
    "edep_table": {"hit_id": (I4, 1), "g4_id": (I4, 1), "energy": (F4, 1), "energy_fraction": (F4, 1)},
    "particle_table": {
        "g4_id": (I4, 1),
        "g4_pdg": (I4, 1),
        "parent_id": (I4, 1),
        "category": (I4, 1),
        "instance": (I4, 1),
        "momentum": (F4, 1),
        "start_position": (F4, 3),
        "end_position": (F4, 3),
        "start_position_corr": (F4, 3),
        "end_position_corr": (F4, 3),
        "start_wire_pos": (I4, 3),
        "end_wire_pos": (I4, 3),
        "start_wire_time": (F4, 1),
        "end_wire_time": (F4, 1),
        "start_process": (S64, 1),
        "end_process": (S64, 1),
    },
}
N_EVENTS = 12
N_MISSING = round(0.002 * SMALL.n_wires)


@pytest.fixture(scope="module")
def withwire(tmp_path_factory):
    path = tmp_path_factory.mktemp("uboone") / "bnb_WithWire_00.h5"
    return simulate_microboone(path, n_events=N_EVENTS, seed=1, geometry="small", chunk_rows=300)


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """200 small NoWire events: enough for the sample mix and for gaps in seq_cnt."""
    path = tmp_path_factory.mktemp("uboone") / "bnb_NoWire_00.h5"
    simulate_microboone(path, n_events=200, seed=2, geometry="small", with_wire=False)
    with h5py.File(path) as f:
        return {g: {c: d[()] for c, d in f[g].items()} for g in f}


def read(path):
    with h5py.File(path) as f:
        return {g: {c: d[()] for c, d in f[g].items()} for g in f}


def spans(table):
    """{event index: slice of its rows} from a table's seq_cnt."""
    seq = table["event_id.seq_cnt"]
    ends = np.cumsum(seq[:, 1])
    return {int(e): slice(int(b - n), int(b)) for (e, n), b in zip(seq, ends, strict=True)}


def test_layout_dtypes_and_compression(withwire):
    with h5py.File(withwire) as f:
        assert set(f) == set(MICROBOONE)
        for group, columns in MICROBOONE.items():
            g = f[group]
            assert set(g) == set(columns) | {"event_id", "event_id.seq_cnt"}, group
            n = g["event_id"].shape[0]
            for name, (dtype, width) in {**columns, "event_id": (I4, 3)}.items():
                d = g[name]
                assert (d.dtype, d.shape) == (dtype, (n, width)), f"{group}/{name}"
            assert g["event_id.seq_cnt"].dtype == np.int64
            for d in g.values():
                assert d.compression == "gzip" and d.chunks is not None, d.name
        assert f["wire_table/adc"].chunks == (300, SMALL.ticks)
        assert f["particle_table/start_process"][0, 0] == b"primary"


def test_seq_cnt_consistent(withwire, truth):
    for data, n_events in ((read(withwire), N_EVENTS), (truth, 200)):
        ids = data["event_table"]["event_id"]
        assert data["event_table"]["event_id.seq_cnt"].tolist() == [[i, 1] for i in range(n_events)]
        for group, table in data.items():
            seq = table["event_id.seq_cnt"]
            assert seq.shape[1] == 2 and seq[:, 1].sum() == len(table["event_id"]), group
            assert np.all(np.diff(seq[:, 0]) > 0) and np.all(seq[:, 1] > 0), group
            assert seq[0, 0] >= 0 and seq[-1, 0] < n_events
            # the (run, subrun, event) of every row is its owner's
            np.testing.assert_array_equal(table["event_id"], np.repeat(ids[seq[:, 0]], seq[:, 1], 0))
        assert np.all(ids[:, 2] == np.arange(1, n_events + 1))


def test_some_events_are_absent_from_truth_tables(truth):
    parts = truth["particle_table"]["event_id.seq_cnt"][:, 0]
    edeps = truth["edep_table"]["event_id.seq_cnt"][:, 0]
    assert 0 < len(parts) < 200 and len(edeps) < len(parts) + 5
    missing = np.setdiff1d(np.arange(200), parts)
    assert np.all(truth["event_table"]["is_cc"][missing, 0] == 0)  # invisible NC events
    assert not np.isin(
        truth["event_table"]["event_id"][missing, 2], truth["particle_table"]["event_id"][:, 2]
    ).any()
    assert len(truth["hit_table"]["event_id.seq_cnt"]) > 190  # cosmics in nearly every event


def test_wire_rows_shuffled_with_dead_wires(withwire):
    w = read(withwire)["wire_table"]
    seq = w["event_id.seq_cnt"]
    assert np.all(seq[:, 1] == SMALL.n_wires - N_MISSING)
    offsets = np.cumsum((0, *SMALL.wires))
    glob = offsets[w["local_plane"][:, 0]] + w["local_wire"][:, 0].astype(int)
    assert np.all(w["tpc"] == 0) and np.all(w["local_wire"] == np.round(w["local_wire"]))
    assert np.all(w["local_wire"][:, 0] < np.array(SMALL.wires)[w["local_plane"][:, 0]])
    orders = [glob[s] for s in spans(w).values()]
    dead = np.setdiff1d(np.arange(SMALL.n_wires), orders[0])
    assert len(dead) == N_MISSING
    for order in orders:
        assert len(np.unique(order)) == len(order)
        np.testing.assert_array_equal(np.sort(order), np.sort(orders[0]))  # same dead wires
        assert np.any(np.diff(order) < 0)  # not in wire order
    assert not np.array_equal(orders[0], orders[1])
    hits = read(withwire)["hit_table"]
    hit_glob = offsets[hits["local_plane"][:, 0]] + hits["local_wire"][:, 0]
    assert not np.isin(hit_glob, dead).any()  # dead wires have no hits


def test_unshuffled_complete_wires(tmp_path):
    p = simulate_microboone(
        tmp_path / "a.h5", n_events=2, geometry="small", missing_wire_fraction=0.0, shuffle_wires=False
    )
    w = read(p)["wire_table"]
    assert w["event_id.seq_cnt"][:, 1].tolist() == [SMALL.n_wires] * 2
    key = w["local_plane"][:, 0] * 10_000 + w["local_wire"][:, 0]
    assert np.all(np.diff(key[: SMALL.n_wires]) > 0)


def dense_planes(data, event):
    w = data["wire_table"]
    rows = spans(w)[event]
    planes = [np.zeros((n, SMALL.ticks), np.float32) for n in SMALL.wires]
    for p, wire, adc in zip(
        w["local_plane"][rows, 0], w["local_wire"][rows, 0].astype(int), w["adc"][rows], strict=True
    ):
        planes[p][wire] = adc
    return planes


def test_waveforms_agree_with_hits(withwire):
    data = read(withwire)
    hits = data["hit_table"]
    undershoot = []
    for event, rows in spans(hits).items():
        planes = dense_planes(data, event)
        # induction pulses are bipolar, collection pulses unipolar: only noise (1 ADC) dips below 0
        undershoot.append([-q.min() / q.max() for q in planes[:2]])
        assert planes[2].min() > -6
        p, w = hits["local_plane"][rows, 0], hits["local_wire"][rows, 0]
        t = hits["local_time"][rows, 0].astype(int)
        assert np.array_equal(hits["hit_id"][rows, 0], np.arange(len(p)))
        for n in range(3):  # all the charge is in hits, and every hit peaks on charge
            sel = p == n
            assert np.all(planes[n][w[sel], t[sel]] > 0)
            np.testing.assert_allclose(
                planes[n].sum(dtype=np.float64),
                hits["integral"][rows, 0][sel].sum(dtype=np.float64),
                rtol=1e-4,
            )
        occupancy = np.mean([np.count_nonzero(q) / q.size for q in planes])
        assert 0 < occupancy < 0.05
    assert 0.03 < np.median(undershoot) < 0.2


def test_chunk_layout_does_not_change_data(tmp_path, withwire):
    other = simulate_microboone(
        tmp_path / "b.h5", n_events=N_EVENTS, seed=1, geometry="small", chunk_rows=37, compression_level=1
    )
    with h5py.File(withwire) as a, h5py.File(other) as b:
        assert b["wire_table/adc"].chunks == (37, SMALL.ticks)
        np.testing.assert_array_equal(a["wire_table/adc"][()], b["wire_table/adc"][()])


def test_adc_reads_back_exactly(tmp_path, monkeypatch):
    """The pre-compressed chunks decode, with plain h5py, to exactly the samples simulated."""
    from nudask.simulate import microboone

    seen = []
    add = microboone._AdcWriter.add_event

    def spy(self, rows, ticks, vals, n_rows):
        seen.append((self.next_row + rows, ticks, vals))
        add(self, rows, ticks, vals, n_rows)

    monkeypatch.setattr(microboone._AdcWriter, "add_event", spy)
    p = simulate_microboone(tmp_path / "a.h5", n_events=3, seed=7, geometry="small", chunk_rows=500)
    with h5py.File(p) as f:
        adc = f["wire_table/adc"][()]
    expected = np.zeros_like(adc)
    for rows, ticks, vals in seen:
        expected[rows, ticks] = vals
    assert len(seen) == 3 and np.count_nonzero(expected) == sum(len(v) for *_, v in seen)
    np.testing.assert_array_equal(adc, expected)


def test_nowire_has_the_same_events(tmp_path, withwire):
    p = simulate_microboone(
        tmp_path / "bnb_NoWire_00.h5", n_events=N_EVENTS, seed=1, geometry="small", with_wire=False
    )
    nowire, full = read(p), read(withwire)
    assert "wire_table" not in nowire and set(nowire) == set(MICROBOONE) - {"wire_table"}
    for group in nowire:
        for col in nowire[group]:
            np.testing.assert_array_equal(nowire[group][col], full[group][col])


def test_deterministic_per_seed(tmp_path, withwire):
    again = read(
        simulate_microboone(tmp_path / "a.h5", n_events=N_EVENTS, seed=1, geometry="small", chunk_rows=300)
    )
    first = read(withwire)
    for group in first:
        for col in first[group]:
            np.testing.assert_array_equal(first[group][col], again[group][col])
    other = read(simulate_microboone(tmp_path / "b.h5", n_events=3, seed=99, geometry="small"))
    assert not np.array_equal(other["event_table"]["nu_vtx"], first["event_table"]["nu_vtx"][:3])
    # event k depends on (seed, k) only, not on how many events the file holds
    short = read(
        simulate_microboone(tmp_path / "c.h5", n_events=3, seed=1, geometry="small", with_wire=False)
    )
    for col, values in short["event_table"].items():
        np.testing.assert_array_equal(values, first["event_table"][col][:3])
    assert other["event_table"]["event_id"][0, 1] != first["event_table"]["event_id"][0, 1]


def test_truth_is_consistent(truth):
    ev = truth["event_table"]
    vtx = ev["nu_vtx"].astype(np.float64)
    x, y, z = vtx.T
    assert np.all((x >= 0) & (x <= SMALL.x_max) & (np.abs(y) <= SMALL.y_half))
    assert np.all((z >= 0) & (z <= SMALL.z_max))
    s60 = np.sin(np.pi / 3)
    coord = (
        np.stack([0.5 * z + (y + SMALL.y_half) * s60, 0.5 * z - (y - SMALL.y_half) * s60, z], axis=1)
        / SMALL.wire_pitch_cm
    )
    pos = ev["nu_vtx_wire_pos"]
    assert np.all((coord > pos - 1e-4) & (coord < pos + 1 + 1e-4))
    assert np.all((pos >= 0) & (pos < np.array(SMALL.wires)))
    np.testing.assert_allclose(
        ev["nu_vtx_wire_time"][:, 0], SMALL.trigger_tick + x / SMALL.drift_cm_per_tick, rtol=1e-5
    )
    assert np.all(np.abs(ev["nu_vtx_corr"] - ev["nu_vtx"]) < 5)
    np.testing.assert_allclose(np.linalg.norm(ev["nu_dir"], axis=1), 1, rtol=1e-5)
    assert np.all(ev["nu_dir"][:, 2] > 0.99)
    e_nu, e_lep = ev["nu_energy"][:, 0], ev["lep_energy"][:, 0]
    assert np.all((e_nu >= 0.1) & (e_nu <= 6) & (e_lep > 0) & (e_lep < e_nu))
    assert 1.0 < e_nu.mean() < 1.8
    cc, pdg = ev["is_cc"][:, 0], ev["nu_pdg"][:, 0]
    assert set(np.unique(cc)) == {0, 1} and 0.6 < cc.mean() < 0.82  # ~70 % numu CC + ~5 %
    assert np.mean(np.abs(pdg[cc == 1]) == 14) > 0.9 and np.all(np.isin(np.abs(pdg), (12, 14)))

    part = truth["particle_table"]
    for event, rows in spans(part).items():
        prim = part["parent_id"][rows, 0] == 0
        lep = part["g4_pdg"][rows, 0][prim]
        ids = part["g4_id"][rows, 0]
        assert np.array_equal(ids, np.arange(1, len(ids) + 1))
        assert np.all(np.isin(part["parent_id"][rows, 0], np.r_[0, ids]))
        charged = lep[np.isin(np.abs(lep), (11, 13))]
        if cc[event]:  # nu -> l-, nubar -> l+ of the same flavour
            assert charged.tolist() == [np.sign(pdg[event]) * (abs(pdg[event]) - 1)]
        else:
            assert charged.size == 0
    assert np.all((part["category"] >= 0) & (part["category"] <= 8))

    edep, hits = truth["edep_table"], truth["hit_table"]
    part_rows, hit_rows = spans(part), spans(hits)
    for event, rows in spans(edep).items():
        assert np.all(np.isin(edep["g4_id"][rows, 0], part["g4_id"][part_rows[event], 0]))
        h = edep["hit_id"][rows, 0]
        assert h.max() < hit_rows[event].stop - hit_rows[event].start
        frac = np.bincount(h, edep["energy_fraction"][rows, 0])[np.unique(h)]
        np.testing.assert_allclose(frac, 1, rtol=1e-5)
    assert np.all(edep["energy"] > 0)


def test_nue_sample(tmp_path):
    ev = read(
        simulate_microboone(
            tmp_path / "nue_NoWire_00.h5", n_events=20, sample="nue", geometry="small", with_wire=False
        )
    )
    assert np.all(ev["event_table"]["is_cc"] == 1)
    assert np.all(np.abs(ev["event_table"]["nu_pdg"]) == 12)
    prim = ev["particle_table"]["parent_id"][:, 0] == 0
    assert np.sum(np.abs(ev["particle_table"]["g4_pdg"][prim, 0]) == 11) == 20


def test_bad_arguments_and_atomic_overwrite(tmp_path):
    with pytest.raises(ValueError, match="sample"):
        simulate_microboone(tmp_path / "x.h5", sample="numi")
    with pytest.raises(ValueError, match="geometry"):
        simulate_microboone(tmp_path / "x.h5", geometry="dune")
    p = tmp_path / "x.h5"
    p.write_bytes(b"not hdf5")
    assert simulate_microboone(p, n_events=1, geometry="small", with_wire=False) == p
    assert simulate_microboone(str(p), n_events=2, geometry="small") == p
    assert len(read(p)["event_table"]["is_cc"]) == 2
    assert sorted(q.name for q in tmp_path.iterdir()) == ["x.h5"]


def nonzero_fraction(path) -> float:
    with h5py.File(path) as f:
        adc = f["wire_table/adc"]
        return sum(np.count_nonzero(adc[i : i + 4000]) for i in range(0, adc.shape[0], 4000)) / adc.size


def test_cosmics_option_sets_the_density(tmp_path, monkeypatch):
    """On the full geometry the sparse overlay is about half as dense as the real one."""
    from nudask.simulate import microboone

    samples = []
    waveforms = microboone._waveforms

    def spy(*args):
        keys, vals, sample_keys = waveforms(*args)
        samples.append(len(keys))
        return keys, vals, sample_keys

    monkeypatch.setattr(microboone, "_waveforms", spy)
    for c in ("sparse", "real"):  # NoWire: the same waveforms are simulated, not compressed
        simulate_microboone(tmp_path / f"{c}.h5", n_events=1, seed=4, cosmics=c, with_wire=False)
    assert samples[0] < 0.7 * samples[1]
    small = {}
    for c in (0, 12):  # an integer is the mean number of muons per readout
        p = simulate_microboone(tmp_path / f"{c}.h5", n_events=4, seed=4, geometry="small", cosmics=c)
        small[c] = read(p)
        assert sum(samples[-4:]) == np.count_nonzero(small[c]["wire_table"]["adc"])
    assert (
        np.count_nonzero(small[0]["wire_table"]["adc"]) < np.count_nonzero(small[12]["wire_table"]["adc"]) / 3
    )
    assert len(small[0]["hit_table"]["hit_id"]) < len(small[12]["hit_table"]["hit_id"]) / 3
    for col, values in small[0]["event_table"].items():  # the overlay leaves the neutrinos alone
        np.testing.assert_array_equal(values, small[12]["event_table"][col])


@pytest.mark.parametrize("bad", ["dense", -1, 2.5, True, None])
def test_cosmics_option_refuses_bad_values(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"cosmics must be 'real', 'sparse' or a mean number of muons"):
        simulate_microboone(tmp_path / "x.h5", geometry="small", cosmics=bad)
    assert not list(tmp_path.iterdir())


def test_cosmics_option_from_the_command_line(tmp_path, capsys):
    argv = ["simulate", str(tmp_path), "--format", "microboone", "--events", "2", "-O", "geometry=small"]
    assert main([*argv, "-O", "cosmics=0"]) == 0
    with h5py.File(tmp_path / "bnb_WithWire_00.h5") as f:
        assert f["event_table/is_cc"].shape == (2, 1)
    assert main([*argv, "-O", "cosmics=lots"]) == 2
    assert "cosmics must be 'real', 'sparse' or a mean number of muons per readout" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("sample", "mb_per_event"), [("bnb", 1.8), ("nue", 2.0)])
def test_full_geometry_weighs_like_the_public_files(tmp_path, sample, mb_per_event):
    """The public WithWire files: 1.8 MB per event (inclusive), 2.0 MB (nue), all tables included."""
    n = 4
    p = simulate_microboone(tmp_path / f"{sample}_WithWire_00.h5", n_events=n, seed=5, sample=sample)
    assert abs(p.stat().st_size / n / 1e6 / mb_per_event - 1) < 0.15
    assert 0.005 < nonzero_fraction(p) < 0.008  # the public files: about 0.75 %
    reader = get_reader("microboone")
    pixels = [
        sum(len(im.values) for im in ev.images.values())
        for ev in reader.read(Chunk(str(p), "microboone", 0, n))
    ]
    assert 40_000 < np.mean(pixels) < 100_000  # the public files: about 77,000


def test_full_geometry_occupancy(tmp_path):
    g = get_geometry("microboone")
    p = simulate_microboone(tmp_path / "bnb_WithWire_00.h5", n_events=2, seed=0)
    with h5py.File(p) as f:
        adc = f["wire_table/adc"]
        n_dead = round(0.002 * g.n_wires)
        assert adc.shape == (2 * (g.n_wires - n_dead), g.ticks)
        assert adc.chunks == (1000, g.ticks)
        nonzero = sum(np.count_nonzero(adc[i : i + 4000]) for i in range(0, adc.shape[0], 4000))
        assert 0.002 < nonzero / adc.size < 0.007
        # a MIP pulse peaks at tens of ADC: the typical hit of the collection plane
        plane, integral = f["hit_table/local_plane"][:, 0], f["hit_table/integral"][:, 0]
        rms = f["hit_table/rms"][:, 0]
        peak = np.median((integral / (rms * np.sqrt(2 * np.pi)))[plane == 2])
        assert 10 < peak < 100


# -- NOvA -------------------------------------------------------------------------------------
NOVA = {
    "cycle": "u4",
    "evt": "u4",
    "finalstate": "u4",
    "finalstateprong": "u4",
    "interaction": "u4",
    "lepenergy": "f4",
    "nuenergy": "f4",
    "parent": "u4",
    "particles": "u4",
    "rec.training.trainingdata_idx": "u4",
    "run": "u4",
    "subevt": "u2",
    "subrun": "u4",
    "vtxx": "f8",
    "vtxy": "f8",
    "vtxz": "f8",
}


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    path = simulate_nova(tmp_path_factory.mktemp("nova") / "neutrino1.h5", n_events=600, seed=4)
    with h5py.File(path) as f:
        assert f["cvnmap"].compression == "gzip"
        assert all(d.compression == "gzip" for d in f["neutrino"].values())
        return path, f["cvnmap"][()], {k: d[()] for k, d in f["neutrino"].items()}


def test_nova_layout(nova):
    _, maps, nu = nova
    assert maps.shape == (600, 16000) and maps.dtype == np.uint8
    assert set(nu) == set(NOVA)
    for name, dtype in NOVA.items():
        assert nu[name].shape == (600, 1) and nu[name].dtype == np.dtype(dtype), name
    assert np.all(nu["evt"][:, 0] == np.arange(1, 601))
    assert np.mean(maps > 0) < 0.05  # mostly zero


def test_nova_codes_agree(nova):
    _, maps, nu = nova
    it, fs = nu["interaction"][:, 0], nu["finalstate"][:, 0]
    assert np.all(it <= 15) and np.all(fs <= 49)
    assert 0.84 < np.mean(it <= 3) < 0.92
    block = np.select([it <= 3, it <= 7, np.isin(it, (12, 13)), it == 14], [0, 16, 32, 48], 49)
    assert np.all(np.where(block < 48, (fs >= block) & (fs < block + 16), fs == block))
    assert np.all(nu["lepenergy"] <= nu["nuenergy"])
    assert np.all(nu["nuenergy"][it == 14] == 0)
    views = maps.reshape(-1, 2, 100, 80)
    numu = views[it <= 3]
    lit = (numu > 0).sum((2, 3))  # pixels with charge per event and view
    assert np.all(lit >= 5) and np.all(np.median(lit, axis=0) > 30)
    tracks = (fs[it <= 3] % 16) // 4
    assert np.all(tracks >= 1)  # the muon
    nue = fs[(it >= 4) & (it <= 7)] % 16
    assert np.all(nue % 4 >= 1)  # the electron shower


def test_nova_deterministic(nova, tmp_path):
    _, maps, nu = nova
    again = simulate_nova(tmp_path / "again.h5", n_events=600, seed=4)
    other = simulate_nova(tmp_path / "other.h5", n_events=20, seed=5)
    with h5py.File(again) as a, h5py.File(other) as b:
        np.testing.assert_array_equal(a["cvnmap"][()], maps)
        np.testing.assert_array_equal(a["neutrino/interaction"][()], nu["interaction"])
        assert not np.array_equal(b["cvnmap"][()], maps[:20])
