"""Inputs are taken literally; a changed input is refused or redone."""

from __future__ import annotations

import os
import shutil

import h5py
import pytest

import nudask
from nudask.cli import main
from nudask.errors import InputError
from nudask.pipeline import expand_inputs

SMALL = {"geometry": "small"}


def test_existing_path_is_that_file_whatever_its_characters(bnb_files, tmp_path):
    odd = tmp_path / "run [1].h5"
    shutil.copy(bnb_files[0], odd)
    (tmp_path / "run 1.h5").write_bytes(b"a glob of 'run [1].h5' would pick this one")
    assert expand_inputs(str(odd)) == [str(odd)]
    assert expand_inputs(str(tmp_path / "run*.h5")) == sorted([str(odd), str(tmp_path / "run 1.h5")])


def test_pattern_matching_nothing_raises_or_is_listed_as_failed(bnb_files, tmp_path, client):
    nothing = str(tmp_path / "nope_*.h5")
    with pytest.raises(InputError, match=r"nope_\*\.h5.*no input files match"):
        expand_inputs([bnb_files[1], nothing])
    found = expand_inputs([bnb_files[1], nothing], on_error="skip")
    assert found == [bnb_files[1]] and found.unmatched == [nothing]
    with pytest.raises(InputError, match=r"nope_\*\.h5"):
        nudask.preprocess([bnb_files[1], nothing], tmp_path / "a", reader_options=SMALL, progress=False)
    assert not (tmp_path / "a").exists()
    ds = nudask.preprocess(
        [bnb_files[1], nothing], tmp_path / "b", reader_options=SMALL, on_error="skip", progress=False
    )
    assert len(ds) == 7
    assert [(f.path, f.error) for f in ds.manifest.failed] == [
        (nothing, "no input files match this path or pattern")
    ]


def test_changed_input_is_refused_or_updated(bnb_files, tmp_path, client):
    inputs = [str(tmp_path / os.path.basename(p)) for p in bnb_files]
    for src, dst in zip(bnb_files, inputs):
        shutil.copy(src, dst)
    kw = dict(reader_options=SMALL, events_per_chunk=3, progress=False)
    out = tmp_path / "ds"
    first = nudask.preprocess(inputs, out, checksum=True, **kw)
    assert all(i.sha256 for i in first.manifest.inputs)
    before = sorted(zip(first.metadata.source_file, first.metadata.event_index))
    kept = {f: os.stat(f).st_mtime_ns for f in first.files if "WithWire_00-" in os.path.basename(f)}
    assert kept
    with h5py.File(inputs[1], "r+") as f:  # same size, other truth
        f["event_table/nu_energy"][0] = 123.0
    with pytest.raises(InputError, match=r"bnb_WithWire_01\.h5.*changed since.*--update"):
        nudask.preprocess(inputs, out, **kw)
    assert (
        main(["preprocess", *inputs, "--out", str(out), "-O", "geometry=small", "--events-per-chunk", "3"])
        == 2
    )
    ds = nudask.preprocess(inputs, out, update=True, **kw)
    m = ds.metadata
    assert len(m) == 16 and sorted(zip(m.source_file, m.event_index)) == before
    assert 123.0 in m.nu_energy.tolist()
    assert {f: os.stat(f).st_mtime_ns for f in kept} == kept  # the unchanged input's parts stay
    again = nudask.preprocess(inputs, out, **kw)  # now recorded as it is: nothing changed
    assert len(again) == 16
