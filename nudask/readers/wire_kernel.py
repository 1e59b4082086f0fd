"""The wire rendering as a compiled kernel: one pass over each inflated block of rows.

:mod:`.wire_render` is the reference (numpy: find the non-zero samples, sort,
sum, cut, clip). Here one Numba kernel walks each row of an inflated block
once: it screens windows of 64 ticks for any non-zero sample, sums the
``factor``-tick blocks that have some, and keeps the cut and clipped values
per row. A second kernel orders the rows by (plane, wire) and gathers each
plane's COO. The results are bit for bit those of
:func:`.wire_render.render_wire_samples`: each block is summed in float64 in
the very order numpy's ``add.reduceat`` uses (first sample, then numpy's
pairwise sum of the rest) and rounded once to float32; cut-off and ceiling
are compared in float32 as numpy compares a float32 array with a Python float.

The kernel covers float32 samples and blocks of up to 129 ticks (numpy's
pairwise sum recurses above 128 samples): the reader uses the reference
otherwise (``microboone.wire_kernel_supported``).

Buffers live in :class:`EventRender` and are reused event after event
(grown geometrically, never shrunk); only the returned COO arrays are new.

Compiled code is cached on disk (``cache=True``), so worker processes load it
instead of compiling it: in ``$NUMBA_CACHE_DIR`` when set, else next to this
module when its ``__pycache__`` is writable, else in Numba's user-wide cache
(``$XDG_CACHE_HOME/numba``, by default ``~/.cache/numba``: inside a read-only
Apptainer image that is the bound-in home). Where none is writable each
process compiles for itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..events import Coo
from ..sparse import index_dtype
from .wire_render import WireRender


def _compiled(fn):
    """``fn`` compiled without the GIL and cached on disk, in memory only if no cache folder is writable."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba found no writable cache location: each process compiles
        return njit(nogil=True)(fn)


class DuplicateWireError(ValueError):
    """Two rows of one event carry the same (plane, wire)."""

    def __init__(self, plane: int, wire: int):
        super().__init__(f"wire {wire} of plane {plane} has two rows")
        self.plane, self.wire = plane, wire


@_compiled
def _pairwise_sum(x, lo, n):
    """numpy's pairwise sum of ``x[lo:lo+n]`` (float64), for ``n <= 128``."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += x[i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[lo + i]
        i += 1
    return res


WINDOW = 64  # ticks screened at once (32 words): a fixed trip count, so the OR below is vectorised


@_compiled
def _block_sum(row, t0, t1, nonzero):
    """float64 sum of the non-zero samples of ``row[t0:t1]`` in ``add.reduceat``'s order, and their count."""
    m = 0
    for t in range(t0, t1):
        v = row[t]
        if v != 0:
            nonzero[m] = v
            m += 1
    if m == 0:
        return 0.0, 0
    return nonzero[0] + _pairwise_sum(nonzero, 1, m - 1), m


@_compiled
def _scan_window(row, w0, w1, next_bin, factor, threshold, ceiling, bins, values, fill, nonzero):
    """Sum, cut and clip the blocks overlapping ticks ``[w0, w1)`` from ``next_bin`` on."""
    ticks = row.size
    last = (w1 - 1) // factor
    for b in range(max(next_bin, w0 // factor), last + 1):
        total, m = _block_sum(row, b * factor, min((b + 1) * factor, ticks), nonzero)
        if m == 0:
            continue
        value = np.float32(total)
        if value >= threshold and value != 0:
            bins[fill] = b
            values[fill] = ceiling if value > ceiling else value
            fill += 1
    return last + 1, fill


@_compiled
def scan_rows(block, words, row0, factor, threshold, ceiling, seg_start, seg_count, bins, values, fill):
    """Kept ``(bin, value)`` pairs of each row of ``block`` (rows, ticks), float32.

    ``words`` is ``block`` viewed as uint64 (two samples a word) when ``ticks``
    is even, else any array with no columns (every row is then screened tick
    by tick). Row ``i``'s pairs go to ``bins``/``values`` from ``fill`` on, in
    bin order; ``seg_start`` and ``seg_count`` at ``row0 + i`` say where.
    Returns ``(rows done, fill)``: fewer rows than the block's when the
    buffers might not hold the next one.
    """
    n, ticks = block.shape
    nbins = (ticks + factor - 1) // factor
    nonzero = np.empty(factor, np.float64)
    full = ticks // WINDOW if words.shape[1] > 0 else 0
    per_window = np.uint64(WINDOW // 2)
    sign = np.uint64(0x7FFFFFFF7FFFFFFF)  # -0.0 counts as zero, as in numpy
    for i in range(n):
        if fill + nbins > bins.size:
            return i, fill
        seg_start[row0 + i] = fill
        row = block[i]
        row_words = words[i]
        next_bin = 0  # bins before it are done (a block may straddle two windows)
        for w in range(full):
            seen = np.uint64(0)
            first = np.uint64(w) * per_window
            for t in range(per_window):  # unsigned indices: no wraparound code, so it vectorises
                seen |= row_words[first + t]
            if seen & sign:
                next_bin, fill = _scan_window(
                    row, w * WINDOW, (w + 1) * WINDOW, next_bin, factor, threshold, ceiling,
                    bins, values, fill, nonzero,
                )  # fmt: skip
        rest = False
        for t in range(full * WINDOW, ticks):
            rest |= row[t] != 0
        if rest:
            next_bin, fill = _scan_window(
                row, full * WINDOW, ticks, next_bin, factor, threshold, ceiling, bins, values, fill, nonzero
            )
        seg_count[row0 + i] = fill - seg_start[row0 + i]
    return n, fill


@_compiled
def order_rows(plane, wire, plane_first, slot_row, seg_count, nnz):
    """File each row of an event under its (plane, wire) slot; count each plane's entries.

    ``slot_row`` is all -1 on entry (and is left so by :func:`gather_plane`).
    Returns -1, or the first slot that two rows share (``slot_row`` reset).
    """
    for p in range(3):
        nnz[p] = 0
    for r in range(plane.size):
        slot = plane_first[plane[r]] + wire[r]
        if slot_row[slot] >= 0:
            for q in range(r):
                slot_row[plane_first[plane[q]] + wire[q]] = -1
            return slot
        slot_row[slot] = r
        nnz[plane[r]] += seg_count[r]
    return -1


@_compiled
def gather_plane(first, nwires, slot_row, seg_start, seg_count, bins, values, out_wire, out_bin, out_value):
    """One plane's COO in (wire, bin) order from the rows filed by :func:`order_rows`."""
    k = 0
    for w in range(nwires):
        r = slot_row[first + w]
        if r < 0:
            continue
        slot_row[first + w] = -1
        s = seg_start[r]
        for j in range(seg_count[r]):
            out_wire[k] = w
            out_bin[k] = bins[s + j]
            out_value[k] = values[s + j]
            k += 1


class EventRender:
    """Render events one at a time, reusing every buffer.

    Per event: :meth:`start` with its row count, :meth:`scan` each block of
    its rows, then :meth:`images` with the rows' planes and wires.
    """

    def __init__(self, wires: tuple[int, ...], ticks: int, settings: WireRender):
        self.wires = tuple(int(w) for w in wires)
        self.factor = int(settings.factor)
        self.bins = settings.n_bins(ticks)
        self.threshold = np.float32(settings.threshold)
        self.ceiling = np.float32(settings.ceiling)
        self.wire_dtypes = [index_dtype(n) for n in self.wires]
        self.bin_dtype = index_dtype(self.bins)
        self.plane_first = np.concatenate([[0], np.cumsum(self.wires)]).astype(np.int64)
        self.slot_row = np.full(int(self.plane_first[-1]), -1, np.int64)
        self.nnz = np.zeros(3, np.int64)
        self.seg_start = np.zeros(0, np.int64)
        self.seg_count = np.zeros(0, np.int64)
        self.bin_buf = np.zeros(max(1 << 16, self.bins), np.int32)
        self.value_buf = np.zeros(self.bin_buf.size, np.float32)
        self.fill = 0

    def start(self, rows: int) -> None:
        if self.seg_count.size < rows:
            size = max(rows, 2 * self.seg_count.size)
            self.seg_start, self.seg_count = np.zeros(size, np.int64), np.zeros(size, np.int64)
        self.seg_count[:rows] = 0
        self.fill = 0

    def scan(self, block: np.ndarray, row0: int) -> None:
        """Scan ``block`` (rows ``row0 ...`` of the event)."""
        even = block.shape[1] % 2 == 0 and block.strides[1] == 4
        words = block.view(np.uint64) if even else np.zeros((block.shape[0], 0), np.uint64)
        done = 0
        while done < block.shape[0]:
            n, self.fill = scan_rows(
                block[done:], words[done:], row0 + done, self.factor, self.threshold, self.ceiling,
                self.seg_start, self.seg_count, self.bin_buf, self.value_buf, self.fill,
            )  # fmt: skip
            done += n
            if done < block.shape[0]:  # the buffers are full: grow them and go on
                size = 2 * self.bin_buf.size
                self.bin_buf = np.concatenate([self.bin_buf, np.zeros(size - self.bin_buf.size, np.int32)])
                self.value_buf = np.concatenate(
                    [self.value_buf, np.zeros(size - self.value_buf.size, np.float32)]
                )

    def images(self, plane: np.ndarray, wire: np.ndarray) -> list[Coo]:
        """Each plane's COO, sorted by (wire, time bin); raises :class:`DuplicateWireError`."""
        rows = plane.size
        dup = order_rows(plane, wire, self.plane_first, self.slot_row, self.seg_count[:rows], self.nnz)
        if dup >= 0:
            p = int(np.searchsorted(self.plane_first, dup, side="right")) - 1
            raise DuplicateWireError(p, int(dup - self.plane_first[p]))
        out = []
        for p, nwires in enumerate(self.wires):
            nnz = int(self.nnz[p])
            index = (np.empty(nnz, self.wire_dtypes[p]), np.empty(nnz, self.bin_dtype))
            values = np.empty(nnz, np.float32)
            gather_plane(
                self.plane_first[p], nwires, self.slot_row, self.seg_start, self.seg_count,
                self.bin_buf, self.value_buf, *index, values,
            )  # fmt: skip
            out.append(Coo((nwires, self.bins), index, values))
        return out
