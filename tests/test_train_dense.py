"""Dense views in the training stream: variable-size event images padded or cut to a window."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import nudask
from nudask.errors import ConfigError
from nudask.readers.connie.simulate import simulate
from nudask.train.config import make_config
from nudask.train.data import load_data


@pytest.fixture(scope="module")
def events_ds(tmp_path_factory, client):
    """Cropped CONNIE events: one dense view ``event``, each image at its own size."""
    out = str(tmp_path_factory.mktemp("connie_dense"))
    simulate(out, files=1, events=48, seed=7, rows=120, cols=200, nsamp=1)
    files = sorted(glob.glob(os.path.join(out, "events", "*.fits")))
    opts = {"mode": "events"}
    return nudask.preprocess(files, os.path.join(out, "ds"), reader="connie", reader_options=opts,
                             events_per_chunk=16, client=client, progress=False)  # fmt: skip


def _source(ds, **inp):
    cfg = make_config(
        {
            "data": ds.path,
            "task": {"target": "particle"},
            "split": {"test": 0.3, "validation": 0.0},
            "input": {"batch_size": 8, "buffer_events": 16, **inp},
        }
    )
    data = load_data(cfg)
    return data, data.source("train", shuffle=False)


def _centred(image, size):
    """The test's own centre pad/cut: the image's centre pixel lands on the window's."""
    out = np.zeros(size, np.float32)
    (h, w), (H, W) = image.shape, size
    r0, c0 = (h - H) // 2, (w - W) // 2
    for r in range(H):
        for c in range(W):
            if 0 <= r + r0 < h and 0 <= c + c0 < w:
                out[r, c] = image[r + r0, c + c0]
    return out


def test_dense_batches_equal_the_stored_images(events_ds):
    ds = events_ds
    shapes = {ds.image(i)["event"].shape for i in range(len(ds))}
    assert len(shapes) > 5 and min(s[0] for s in shapes) < 64 < max(s[0] for s in shapes)  # padded and cut
    data, src = _source(ds, crop="centre", crop_size=[64, 64], scale_factor=0.5)
    assert data.preps["event"].dense
    seen = 0
    for b in range(len(src)):
        x, y = src.batch(b)
        assert x["event"].shape[1:] == (64, 64, 1)
        for k, row in enumerate(src.batch_rows(b)):
            np.testing.assert_allclose(
                x["event"][k, ..., 0], 0.5 * _centred(ds.image(row)["event"], (64, 64))
            )
            assert y[k] == ds.metadata["label"][row]
            seen += 1
    assert seen == data.rows("train").size > 20

    # a fixed window of the largest shape: each image at the top left; downsampled blocks are summed
    big = ds.views["event"].shape
    data, src = _source(
        ds, crop="fixed", crop_size=list(big), downsample=[2, 2], scale="log", scale_factor=1.0
    )
    x, _ = src.batch(1)
    for k, row in enumerate(src.batch_rows(1)):
        image = ds.image(row)["event"]
        full = np.zeros((big[0] + big[0] % 2, big[1] + big[1] % 2), np.float32)
        full[: image.shape[0], : image.shape[1]] = image
        summed = full.reshape(full.shape[0] // 2, 2, full.shape[1] // 2, 2).sum(axis=(1, 3))
        np.testing.assert_allclose(
            x["event"][k, ..., 0], np.sign(summed) * np.log1p(np.abs(summed)), rtol=1e-5, atol=1e-6
        )


def test_mixed_sizes_without_a_window_are_refused(events_ds):
    with pytest.raises(ConfigError, match="holds images of several sizes.*input.crop: centre"):
        _source(events_ds)


def test_dense_views_refuse_device_densify(events_ds):
    with pytest.raises(ConfigError, match="stored dense: use densify: host"):
        _source(events_ds, densify="device")


def test_augmentation_flips_and_turns_each_event(events_ds):
    ds = events_ds
    base = {"data": ds.path, "task": {"target": "particle"},
            "input": {"crop": "centre", "crop_size": [48, 48], "batch_size": 16}}  # fmt: skip
    plain = load_data(make_config(base)).source("train", shuffle=False)
    base["input"]["augment"] = ["flip_rows", "flip_cols", "rot90"]
    aug = load_data(make_config(base)).source("train", shuffle=False)
    a, b = plain.batch(0)[0]["event"][..., 0], aug.batch(0)[0]["event"][..., 0]
    turned = 0
    for k in range(a.shape[0]):  # each event is one of the 8 symmetries of its own image
        options = [np.rot90(f, q) for f in (a[k], a[k][::-1]) for q in range(4)]
        match = [i for i, o in enumerate(options) if np.array_equal(o, b[k])]
        assert match
        turned += 0 not in match
    assert turned >= 3  # 1/8 of them stay as they are, on average
    again = aug.batch(0)[0]["event"][..., 0]
    np.testing.assert_array_equal(again, b)  # the same draw for the same seed, epoch and batch
    assert load_data(make_config(base)).source("test").augment == ()  # training batches only
