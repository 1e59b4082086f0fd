"""A worker SIGKILLed while it writes a part: the run still finishes, nothing half-written stays."""

from __future__ import annotations

import os

import pytest
from distributed import Client, LocalCluster

import nudask

SMALL = {"geometry": "small"}


def die_mid_write_once(flag: str) -> None:
    """In a worker: the next part write leaves half a temporary file, then the process is killed."""
    import signal

    import nudask.dataset.write as w

    real = w.pq.write_table

    def write_then_die(table, where, **kw):
        if not os.path.exists(flag):
            open(flag, "w").close()
            real(table, where, **kw)
            with open(where, "r+b") as f:  # half a file, as a kill mid-write leaves it
                f.truncate(os.path.getsize(where) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(table, where, **kw)

    w.pq.write_table = write_then_die


@pytest.mark.slow
def test_a_worker_killed_mid_write_leaves_no_temporary_file(bnb_files, tmp_path):
    flag = str(tmp_path / "killed-once")
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        client.run(die_mid_write_once, flag)
        ds = nudask.preprocess(
            bnb_files,
            tmp_path / "ds",
            reader_options=SMALL,
            events_per_chunk=4,
            client=client,
            progress=False,
        )
    assert os.path.exists(flag)  # a worker really died mid-write
    assert len(ds) == 16 and sorted(ds.metadata["event_index"].tolist()) == sorted([*range(9), *range(7)])
    left = sorted(n for n in os.listdir(ds.path) if n.endswith(".tmp") or n.startswith("."))
    assert left == []
