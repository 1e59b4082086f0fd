import numpy as np
import pytest

from nudask.readers.wire_render import WireRender, render_wire_plane, render_wire_samples
from nudask.sparse import to_coo, to_dense


def waveforms(rng, wires=40, ticks=6400, occupancy=0.01):
    adc = np.zeros((wires, ticks), np.float32)
    mask = rng.random(adc.shape) < occupancy
    adc[mask] = rng.normal(20, 30, mask.sum()).astype(np.float32)  # some negative lobes
    return adc


@pytest.mark.parametrize("factor", [1, 4, 6, 7])
@pytest.mark.parametrize("ticks", [6400, 1280, 1283])
def test_sparse_rendering_equals_the_dense_recipe(factor, ticks):
    rng = np.random.default_rng(factor * ticks)
    adc = waveforms(rng, ticks=ticks)
    settings = WireRender(factor)
    dense = render_wire_plane(adc, settings)
    w, t = np.nonzero(adc)
    coo = render_wire_samples(w, t, adc[w, t], adc.shape, settings)
    assert coo.shape == dense.shape == (40, -(-ticks // factor))
    assert coo == to_coo(dense)
    np.testing.assert_array_equal(to_dense(coo), dense)  # bit for bit


def test_sample_order_does_not_matter():
    rng = np.random.default_rng(1)
    adc = waveforms(rng)
    w, t = np.nonzero(adc)
    perm = rng.permutation(w.size)
    a = render_wire_samples(w, t, adc[w, t], adc.shape)
    b = render_wire_samples(w[perm], t[perm], adc[w, t][perm], adc.shape)
    assert a == b


def test_notebook_recipe_numbers():
    adc = np.zeros((2, 6400), np.float32)
    adc[0, 0:6] = 1.0  # block sum 6 < 10 -> cut
    adc[0, 6:12] = 2.0  # 12 kept
    adc[1, 6396:6400] = 40  # partial last block (4 ticks) = 160 -> clipped to 100
    img = render_wire_plane(adc)
    assert img.shape == (2, 1067)
    assert img[0, 0] == 0 and img[0, 1] == 12 and img[1, 1066] == 100
    assert np.count_nonzero(img) == 2


def test_cutoff_and_saturation_scale_with_factor():
    s = WireRender(12)
    assert (s.threshold, s.ceiling) == (20.0, 200.0)
    assert WireRender(6, cutoff=5, saturation=50).to_dict() == {
        "factor": 6,
        "cutoff": 5.0,
        "saturation": 50.0,
    }


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_factor_is_refused(bad):
    with pytest.raises(ValueError, match="factor"):
        WireRender(bad)
