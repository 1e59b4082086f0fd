"""One writer per dataset: a live lock refuses a second run, a dead one is broken."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

import nudask
from nudask.dataset.manifest import MANIFEST
from nudask.errors import OutputError
from nudask.lock import LOCK

SMALL = {"geometry": "small"}


def hold(out, pid):
    os.makedirs(out, exist_ok=True)
    (out / LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": "then"}))


def test_second_run_is_refused_naming_the_holder(bnb_files, tmp_path, client):
    out = tmp_path / "ds"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        hold(out, sleeper.pid)
        for overwrite in (False, True):
            with pytest.raises(OutputError, match=rf"host {socket.gethostname()}, pid {sleeper.pid}"):
                nudask.preprocess(
                    bnb_files[1], out, reader_options=SMALL, overwrite=overwrite, progress=False
                )
        assert sorted(os.listdir(out)) == [LOCK]  # nothing written, the holder's lock kept
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_is_broken_with_a_warning(bnb_files, tmp_path, client):
    out = tmp_path / "ds"
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold(out, dead.pid)
    with pytest.warns(UserWarning, match=rf"stale lock .* pid {dead.pid}"):
        ds = nudask.preprocess(bnb_files[1], out, reader_options=SMALL, progress=False)
    assert len(ds) == 7 and not (out / LOCK).exists()


def test_zombie_holder_is_dead(tmp_path):
    from nudask.lock import _alive

    zombie = subprocess.Popen(["true"])
    import time

    for _ in range(100):  # exited, not yet waited for: a zombie
        with open(f"/proc/{zombie.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.02)
    assert not _alive(zombie.pid) and _alive(os.getpid())
    zombie.wait()


def test_overwrite_takes_the_lock_and_leaves_no_stale_manifest(bnb_files, tmp_path, client):
    out = tmp_path / "ds"
    kw = dict(reader_options=SMALL, progress=False)
    nudask.preprocess(bnb_files[1], out, **kw)
    (out / ".part-x.abc.tmp").write_bytes(b"half")
    ds = nudask.preprocess(bnb_files[1], out, events_per_chunk=2, overwrite=True, **kw)
    assert len(ds) == 7 and len(ds.files) == 4
    assert not any(n.endswith(".tmp") for n in os.listdir(out)) and LOCK not in os.listdir(out)
    listed = {f.name for f in nudask.open_dataset(out).manifest.files}
    assert listed <= set(os.listdir(out)) and (out / MANIFEST).exists()
