"""Writing hep_hpc tables: pre-compressed ``adc`` chunks and ``(N, k)`` columns."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

try:  # a standard zlib stream, which HDF5's deflate filter stores; zlib-ng is ~10x faster
    from zlib_ng.zlib_ng import compress as _deflate
except ImportError:  # pragma: no cover
    from zlib import compress as _deflate

I4 = "i4"


class _AdcWriter:
    """Fills ``(chunk_rows, ticks)`` chunks across events and writes them pre-compressed.

    h5py's own deflate is single threaded and ~10x slower than zlib-ng, which releases
    the GIL: chunks are compressed on a thread pool and written with
    ``write_direct_chunk`` (the stream is the same zlib format HDF5's gzip filter stores).
    Chunk buffers are recycled and re-zeroed only where they were written.
    """

    def __init__(self, dset: h5py.Dataset | None, level: int, workers: int | None = None):
        self.dset, self.level = dset, level
        if dset is None:
            return
        self.rows = dset.chunks[0]
        workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(workers)
        self.pending: deque = deque()
        self.max_pending = 2 * workers  # bounds memory: chunks in flight x chunk size
        self.chunk, self.next_row = 0, 0
        self.free: list[np.ndarray] = []
        self.buf = np.zeros(dset.chunks, np.float32)
        self.touched: list[tuple[np.ndarray, np.ndarray]] = []  # where buf was written

    def add_event(self, rows: np.ndarray, ticks: np.ndarray, vals: np.ndarray, n_rows: int) -> None:
        """Samples of one event (row in the event, tick, value); the event owns ``n_rows`` rows."""
        g = self.next_row + rows
        order = np.argsort(g, kind="stable")
        g, ticks, vals = g[order], ticks[order], vals[order]
        end = self.next_row + n_rows
        while self.chunk * self.rows < end:
            c0 = self.chunk * self.rows
            lo, hi = np.searchsorted(g, [c0, c0 + self.rows])
            idx = (g[lo:hi] - c0, ticks[lo:hi])
            self.buf[idx] = vals[lo:hi]
            self.touched.append(idx)
            if c0 + self.rows > end:
                break
            self._flush()
        self.next_row = end

    def _flush(self) -> None:
        offset = (self.chunk * self.rows, 0)
        fut = self.pool.submit(_deflate, self.buf, self.level)
        self.pending.append((offset, fut, self.buf, self.touched))
        self.chunk += 1
        self.buf = self.free.pop() if self.free else np.zeros(self.buf.shape, np.float32)
        self.touched = []
        while len(self.pending) > self.max_pending:
            self._write_one()

    def _write_one(self) -> None:
        offset, fut, buf, touched = self.pending.popleft()
        assert self.dset is not None  # chunks are only queued for a dataset
        self.dset.id.write_direct_chunk(offset, fut.result())
        for idx in touched:
            buf[idx] = 0
        self.free.append(buf)

    def __enter__(self) -> _AdcWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.dset is None:
            return
        try:
            if exc_type is None:
                if self.next_row > self.chunk * self.rows:  # last, partial chunk: zero padded
                    self._flush()
                while self.pending:
                    self._write_one()
        finally:
            self.pool.shutdown(cancel_futures=True)


def _write_table(
    group: h5py.Group, schema, parts: list, ids: np.ndarray, chunk_rows: int, level: int
) -> None:
    """One ``(N, width)`` dataset per column, ``event_id`` and its ``seq_cnt`` index."""
    parts = [(k, cols) for k, cols in parts if np.size(next(iter(cols.values()))) > 0]
    counts = np.array([len(np.atleast_1d(next(iter(c.values())))) for _, c in parts], np.int64)
    events = np.array([k for k, _ in parts], np.int64)
    n = int(counts.sum())

    def put(name, data, dtype, width):
        group.create_dataset(
            name,
            data=np.asarray(data, dtype).reshape(-1, width),
            maxshape=(None, width),
            chunks=(chunk_rows, width),
            compression="gzip",
            compression_opts=level,
        )

    put("event_id", np.repeat(ids[events], counts, axis=0) if n else [], I4, 3)
    put("event_id.seq_cnt", np.stack([events, counts], axis=1) if n else [], "i8", 2)
    for name, dtype, width in schema:
        data = [np.reshape(c[name], (-1, width)) for _, c in parts]
        put(name, np.concatenate(data) if data else [], dtype, width)
