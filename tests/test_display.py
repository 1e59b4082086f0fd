"""nudask.display: event displays are valid, non-blank PNGs drawn the notebook way round."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import nudask
from nudask.display import display_array, max_pool, show_event, title_of, to_uint8
from nudask.events import ViewSpec

YELLOW = np.array([253, 231, 37])  # viridis at 1.0: pixels at the top of the colour scale


@pytest.fixture(scope="module")
def mb(tmp_path_factory, client):
    tmp = tmp_path_factory.mktemp("mb")
    nudask.simulate_microboone(tmp / "bnb.h5", n_events=4, seed=0, geometry="small")
    return nudask.preprocess(
        [tmp / "bnb.h5"],
        out=tmp / "ds",
        reader="microboone",
        reader_options={"geometry": "small"},
        progress=False,
        client=client,
    )


@pytest.fixture(scope="module")
def nova(tmp_path_factory, client):
    tmp = tmp_path_factory.mktemp("nova")
    nudask.simulate_nova(tmp / "neutrino1.h5", n_events=6, seed=0)
    return nudask.preprocess(
        [tmp / "neutrino1.h5"], out=tmp / "ds", reader="nova", progress=False, client=client
    )


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def top_of_scale(rgb: np.ndarray) -> np.ndarray:
    return np.abs(rgb - YELLOW).sum(axis=2) < 30


def drawn_block(ds, monkeypatch, tmp_path, block: dict[str, tuple[slice, slice]]):
    """Pixels at full scale in a display of a made-up event with ``block`` set to vmax,
    less those of a blank event (the colourbar); returns their (row, col) and the shape."""

    def fake(value):
        def image(i):
            out = {k: np.zeros(v.shape, np.float32) for k, v in ds.views.items()}
            for view, where in block.items():
                out[view][where] = value
            return out

        return image

    monkeypatch.setattr(ds, "image", fake(255.0 if ds.views[next(iter(block))].vmax is None else 1e6))
    full = top_of_scale(pixels(show_event(ds, 0, tmp_path / "block.png")))
    monkeypatch.setattr(ds, "image", fake(0.0))
    blank = top_of_scale(pixels(show_event(ds, 0, tmp_path / "blank.png")))
    return np.argwhere(full & ~blank), full.shape


def test_microboone_display(mb, tmp_path):
    path = show_event(mb, 1, tmp_path / "sub" / "ev.png")
    assert path.exists() and path.parent.name == "sub"
    rgb = pixels(path)
    h, w, _ = rgb.shape
    assert w >= 700 and h >= 1000 and h > w  # three planes stacked
    assert rgb.var() > 0
    # tracks drawn: the real event has far more full-scale pixels than its colourbar alone
    blank = pixels(show_event(mb, 1, tmp_path / "cmp.png", cmap="viridis"))
    assert np.array_equal(blank, rgb)  # deterministic
    assert top_of_scale(rgb).sum() > 200


def test_wire_time_is_transposed_time_up(mb, monkeypatch, tmp_path):
    # a block at the lowest wires and the latest time bins of plane u
    bins = mb.views["u"].shape[1]
    hits, (h, w) = drawn_block(mb, monkeypatch, tmp_path, {"u": (slice(0, 12), slice(bins - 15, bins))})
    assert len(hits) > 20
    rows, cols = hits.mean(axis=0)
    # u is the top panel; time up puts late bins at its top, wire across puts wire 0 at its left
    assert rows < 0.15 * h and cols < 0.25 * w


def test_nova_display_as_stored(nova, monkeypatch, tmp_path):
    rgb = pixels(show_event(nova, 2, tmp_path / "nova.png"))
    assert rgb.shape[1] > rgb.shape[0] >= 400 and rgb.var() > 0  # two panels side by side
    # a block at the first planes and the last cells of view xz: rows down, so top right of the left panel
    hits, (h, w) = drawn_block(nova, monkeypatch, tmp_path, {"xz": (slice(0, 10), slice(65, 80))})
    assert len(hits) > 20
    rows, cols = hits.mean(axis=0)
    assert rows < 0.4 * h and 0.2 * w < cols < 0.5 * w


def test_title_has_identity_and_truth(mb, nova):
    row = mb.metadata.iloc[1]
    title = title_of(row, mb.roles)
    assert f"run {row['run']}" in title and f"event {row['event']}" in title
    assert f"pdg {row['nu_pdg']}" in title and f"{row['nu_energy']:.3f} GeV" in title
    row = nova.metadata.iloc[0]
    title = title_of(row, nova.roles)
    assert f"interaction {row['interaction']}" in title and row["mode"] in title


def test_bad_event_number(mb, tmp_path):
    with pytest.raises(IndexError):
        show_event(mb, len(mb), tmp_path / "x.png")
    assert show_event(mb, -1, tmp_path / "last.png").exists()


def test_helpers():
    wire_time = ViewSpec("u", ("wire", "time"), (5, 3), vmax=100.0)
    image = np.arange(15, dtype=np.float32).reshape(5, 3) * 10
    assert np.array_equal(display_array(image, wire_time), image.T)
    as_stored = ViewSpec("xz", ("plane", "cell"), (5, 3))
    assert display_array(image, as_stored) is image
    np.testing.assert_array_equal(to_uint8(image, wire_time), np.clip(image * 2.55, 0, 255).astype(np.uint8))
    assert to_uint8(image, as_stored).max() == 140  # integral values <= 255 kept as they are
    big = np.random.default_rng(0).random((7, 10))
    pooled, _ = max_pool(big, (2, 3))
    assert pooled.shape == (4, 4)
    assert pooled[1, 2] == big[2:4, 6:9].max() and pooled[3, 3] == big[6:, 9:].max()
