"""Event slicing of hep_hpc-style HDF5 tables (MicroBooNE, NOvA h5caf).

A table is a group with one ``(N, k)`` dataset per column and an
``event_id.seq_cnt`` index: rows ``[event index, rows owned]``, in event
order, events with no rows absent. Ranges are found by binary search on the
index: the tables themselves are never scanned.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import InputError


class SeqIndex:
    """Row ranges of the events of one table, from its ``seq_cnt`` index."""

    def __init__(self, group: h5py.Group, path: str):
        name = group.name.lstrip("/")
        if "event_id.seq_cnt" not in group:
            raise InputError(
                path,
                f"table '{name}' has no event_id.seq_cnt index",
                "the file is not in the hep_hpc table layout",
            )
        seq = group["event_id.seq_cnt"][()]
        if seq.ndim != 2 or seq.shape[1] != 2:
            raise InputError(path, f"'{name}/event_id.seq_cnt' has shape {seq.shape}, expected (n, 2)")
        self.events = seq[:, 0].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(seq[:, 1], dtype=np.int64)])
        if seq.size and (np.any(np.diff(self.events) <= 0) or np.any(seq[:, 1] < 0)):
            raise InputError(path, f"'{name}/event_id.seq_cnt' is not in increasing event order")
        self.n_rows = int(self.offsets[-1])

    def rows(self, start: int, stop: int) -> tuple[int, int]:
        """First and end row of events ``[start, stop)`` in the table."""
        lo, hi = np.searchsorted(self.events, [start, stop])
        return int(self.offsets[lo]), int(self.offsets[hi])

    def event_rows(self, start: int, stop: int) -> dict[int, tuple[int, int]]:
        """``{event index: (first row, end row)}`` for the events in range that have rows."""
        lo, hi = np.searchsorted(self.events, [start, stop])
        ev = self.events[lo:hi].tolist()
        bounds = self.offsets[lo : hi + 1].tolist()
        return {e: (bounds[k], bounds[k + 1]) for k, e in enumerate(ev)}

    def counts(self, n_events: int) -> np.ndarray:
        """Rows owned by each of the ``n_events`` events (0 where absent)."""
        out = np.zeros(n_events, np.int64)
        inside = self.events < n_events
        out[self.events[inside]] = np.diff(self.offsets)[inside]
        return out
