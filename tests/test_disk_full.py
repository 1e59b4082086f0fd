"""Disk full: one OutputError naming the path and errno; what was written resumes."""

from __future__ import annotations

import errno
import json
import threading

import pytest

import nudask
import nudask.dataset.write as write
from nudask.errors import OutputError
from nudask.resume import JOURNAL

SMALL = {"geometry": "small"}


def test_disk_full_ends_with_one_error_and_resumes(bnb_files, tmp_path, client, monkeypatch):
    real, calls, lock = write.pq.write_table, [], threading.Lock()

    def full_after_two(table, where, **kw):
        with lock:
            calls.append(where)
            n = len(calls)
        if n > 2:
            raise OSError(errno.ENOSPC, "No space left on device", where)
        return real(table, where, **kw)

    monkeypatch.setattr(write.pq, "write_table", full_after_two)
    out = tmp_path / "ds"
    kw = dict(reader_options=SMALL, events_per_chunk=2, progress=False)
    for on_error in ("raise", "skip"):
        with pytest.raises(OutputError, match=r"cannot write '.*part-.*\.parquet' \(ENOSPC: No space left"):
            nudask.preprocess(bnb_files[1], out, on_error=on_error, **kw)
    journaled = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()]
    assert len(journaled) == 2 and not any(p.name.endswith(".tmp") for p in out.iterdir())
    monkeypatch.setattr(write.pq, "write_table", real)  # space freed
    ds = nudask.preprocess(bnb_files[1], out, **kw)
    m = ds.metadata
    assert sorted(m.event_index) == list(range(7))


def test_failing_run_log_and_report_do_not_hide_the_result(bnb_files, tmp_path, client, monkeypatch):
    import nudask.monitor as monitor

    def broken(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(monitor, "write_run_log", broken)
    with pytest.warns(UserWarning, match="EROFS"):
        ds = nudask.preprocess(bnb_files[1], tmp_path / "ds", reader_options=SMALL, progress=False)
    assert len(ds) == 7
