"""Data at rest: a damaged part is named, never read back as wrong data."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import nudask
from nudask.cli import main
from nudask.dataset.verify import verify
from nudask.errors import DatasetError, NudaskError

SMALL = {"geometry": "small"}


@pytest.fixture(scope="module")
def original(bnb_files, tmp_path_factory, client):
    out = tmp_path_factory.mktemp("integrity") / "ds"
    ds = nudask.preprocess(
        bnb_files[1], out, reader_options=SMALL, events_per_chunk=2, row_group_events=2, progress=False
    )
    return ds


def snapshot(ds):
    return ds.metadata, [ds.image(i) for i in range(len(ds))]


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x5A]))


def test_every_flipped_byte_is_caught_or_harmless(original, tmp_path):
    meta, images = snapshot(original)
    part = original.files[0]
    size = os.path.getsize(part)
    offsets = sorted({int(x) for x in np.linspace(0, size - 1, 40)} | {size - 5, size - 9, 4})
    caught = 0
    for n, offset in enumerate(offsets):
        copy = shutil.copytree(original.path, tmp_path / f"c{n}")
        damaged = os.path.join(copy, os.path.basename(part))
        flip(damaged, offset)
        assert [b.path for b in verify(copy)] == [damaged], offset
        try:
            ds = nudask.open_dataset(copy)
            pd_meta = ds.metadata
            assert pd_meta.equals(meta), f"offset {offset}: metadata differ silently"
            for i, want in enumerate(images):
                got = ds.image(i)
                assert got.keys() == want.keys()
                for view in want:
                    np.testing.assert_array_equal(got[view], want[view], err_msg=f"offset {offset}")
        except NudaskError as err:
            assert isinstance(err, DatasetError) and os.path.basename(part) in str(err), err
            assert "nudask verify" in str(err)
            caught += 1
        shutil.rmtree(copy)
    assert caught >= len(offsets) // 2  # most bytes of a part matter, and are caught


def test_missing_or_truncated_parts_are_named_or_skipped(original, tmp_path):
    copy = shutil.copytree(original.path, tmp_path / "c")
    gone, cut = (os.path.join(copy, os.path.basename(f)) for f in original.files[:2])
    os.remove(gone)
    with open(cut, "r+b") as f:
        f.truncate(100)
    with pytest.raises(DatasetError, match=r"2 missing or damaged.*missing.*100 bytes.*nudask verify"):
        nudask.open_dataset(copy)
    with pytest.warns(UserWarning, match="skipping 2"):
        ds = nudask.open_dataset(copy, missing="skip")
    kept = original.manifest.files[2:]
    assert len(ds) == sum(p.rows for p in kept) and len(ds.metadata) == len(ds)
    assert {b.path: b.error for b in verify(copy)} == {
        gone: "missing",
        cut: f"100 bytes, the manifest says {original.manifest.files[1].bytes}",
    }


def test_verify_cli(original, tmp_path, capsys):
    assert main(["verify", original.path]) == 0
    copy = shutil.copytree(original.path, tmp_path / "c")
    part = os.path.join(copy, os.path.basename(original.files[-1]))
    flip(part, 200)
    assert main(["verify", str(copy)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"{part}: sha256 differs from the manifest's (damaged)"


def test_rerun_redoes_parts_that_fail_verification(bnb_files, original, tmp_path, client):
    copy = shutil.copytree(original.path, tmp_path / "c")
    meta, images = snapshot(original)
    part = os.path.join(copy, os.path.basename(original.files[1]))
    flip(part, 300)
    others = {f: os.stat(f).st_mtime_ns for f in nudask.open_dataset(copy).files if f != part}
    ds = nudask.preprocess(
        bnb_files[1], copy, reader_options=SMALL, events_per_chunk=2, row_group_events=2, progress=False
    )
    assert verify(copy) == []
    assert {f: os.stat(f).st_mtime_ns for f in others} == others  # only the bad part was redone
    assert ds.metadata.drop(columns=[]).equals(meta)
    for i, want in enumerate(images):
        for view in want:
            np.testing.assert_array_equal(ds.image(i)[view], want[view])
