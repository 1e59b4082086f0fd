"""Streaming batches out of the Parquet files: row groups, a bounded shuffle buffer, dense batches.

An epoch's order is planned from metadata alone (:func:`plan_epoch`): the row
groups holding the split's events are shuffled (across files: file and
row-group level at once) with the epoch's seed, cut into *windows* of about
``buffer_events`` events, and the events of each window are shuffled. Batch
``i`` is a slice of that order (a rank takes its part: :mod:`~nudask.train.shard`);
:class:`BatchSource` reads the windows it touches (only the COO columns of the
views used, whole row groups, pyarrow releasing the GIL) into a small cache and
densifies the batch into reused numpy buffers. Memory is bounded by the cache
(a few windows) and the buffer ring (a few batches): it does not grow with the
dataset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from ..schema import coord_columns, views_of
from ..sparse import entry_offsets, from_runs
from . import prepare
from .balance import resample
from .shard import WHOLE, Shard, check_remainder, local_batch_size, n_batches, rank_slice

# Parquet page checksums are verified the first time a process reads a row group (later
# epochs re-read pages already checked); switched off only to measure what verification
# costs (tests/benchmarks/bench_train.py).
VERIFY_PAGES = True


@dataclass
class Layout:
    """Files and row groups of a dataset, rows numbered globally in file order."""

    files: list[str]
    metadata: list[pq.FileMetaData]
    rg_file: np.ndarray
    rg_local: np.ndarray
    rg_first: np.ndarray
    rg_rows: np.ndarray
    verified: set[tuple] = field(default_factory=set)  # (row group, columns) this process checked

    @classmethod
    def of(cls, files: list[str]) -> Layout:
        metas = [pq.read_metadata(f) for f in files]
        rg = [
            (k, g, md.row_group(g).num_rows) for k, md in enumerate(metas) for g in range(md.num_row_groups)
        ]
        arr = np.array(rg, np.int64).reshape(-1, 3)
        first = np.concatenate([[0], np.cumsum(arr[:, 2])[:-1]]).astype(np.int64)
        return cls(list(files), metas, arr[:, 0], arr[:, 1], first, arr[:, 2])

    @property
    def n_rows(self) -> int:
        return int(self.rg_rows.sum())

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rg_first, rows, side="right") - 1


@dataclass
class Plan:
    """One epoch: global rows in order, the window of each position, each window's row groups."""

    order: np.ndarray
    window: np.ndarray
    windows: list[np.ndarray]


def plan_epoch(
    rows: np.ndarray, layout: Layout, buffer_events: int, rng: np.random.Generator | None = None
) -> Plan:
    """Order of ``rows`` (may repeat) for one epoch; storage order when ``rng`` is None."""
    groups = layout.group_of(rows)
    uniq, inverse = np.unique(groups, return_inverse=True)
    counts = np.bincount(inverse, minlength=uniq.size)
    perm = rng.permutation(uniq.size) if rng is not None else np.arange(uniq.size)
    before = np.cumsum(counts[perm]) - counts[perm]
    win_of_group = np.empty(uniq.size, np.int64)
    win_of_group[perm] = before // buffer_events
    win = win_of_group[inverse]
    tiebreak = rng.random(rows.size) if rng is not None else rows
    order = np.lexsort((tiebreak, win))
    n_win = int(win.max()) + 1 if win.size else 0
    windows = [np.sort(uniq[win_of_group == w]) for w in range(n_win)]
    return Plan(rows[order], win[order], windows)


class Window:
    """The COO columns of some row groups, as numpy arrays (views of the Arrow buffers, no copy).

    ``columns[view]`` is ``(bounds, chunks)``: the window rows where each Arrow chunk
    (a row group or file) starts, and per chunk the list offsets and the flat arrays
    (for a dense view: its first channel, every pixel in C order; for a COO view stored as
    runs, every entry's coordinates, one array per axis, in place of the run columns). ``shapes[view]``
    holds the ``{view}_shape`` of each window row for the views in ``shapes``.
    """

    def __init__(
        self, layout: Layout, groups: np.ndarray, views: dict[str, list[str]], shapes: tuple[str, ...] = ()
    ):
        tables = []
        cols = [c for cs in views.values() for c in cs] + [f"{v}_shape" for v in shapes]
        for k in np.unique(layout.rg_file[groups]):
            mine = groups[layout.rg_file[groups] == k]
            check = VERIFY_PAGES and not layout.verified.issuperset((g, tuple(cols)) for g in mine.tolist())
            pf = pq.ParquetFile(
                layout.files[k], metadata=layout.metadata[k], page_checksum_verification=check
            )
            # decoded in this (worker) thread: parallelism comes from the workers, and no extra
            # threads compete with the model for the cores
            tables.append(pf.read_row_groups(layout.rg_local[mine].tolist(), columns=cols, use_threads=False))
        table = pa.concat_tables(tables)  # read whole: every page of these groups is now checked
        if VERIFY_PAGES:
            layout.verified.update((g, tuple(cols)) for g in groups.tolist())
        self.nbytes = table.nbytes
        self.groups = groups
        self.start = np.concatenate([[0], np.cumsum(layout.rg_rows[groups])[:-1]]).astype(np.int64)
        self.columns: dict[str, tuple[np.ndarray, list]] = {}
        # per-event image shapes of the views that need them (dense views, crop: centre), (rows, 2)
        self.shapes = {
            v: table.column(f"{v}_shape").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
            for v in shapes
        }
        runs = _run_columns(table.schema, views)
        for view, names in views.items():
            chunked = [table.column(c) for c in names]
            bounds = [np.cumsum([0] + [len(ch) for ch in col.chunks]) for col in chunked]
            if not all(np.array_equal(bounds[0], b) for b in bounds):  # unusual: align by copying
                chunked = [pa.chunked_array([col.combine_chunks()]) for col in chunked]
                bounds = [np.array([0, len(chunked[0])])]
            chunks = []
            for k in range(len(bounds[0]) - 1):
                lists = [_flat(col.chunk(k)) for col in chunked]
                if view in runs:  # the run columns come back as every entry's coordinates
                    lists = _expand_runs(lists, runs[view], view, groups)
                offsets = lists[0][0]
                for name, (off, _) in zip(names, lists):
                    if view not in runs and not np.array_equal(off, offsets):
                        raise DatasetError(
                            f"COO column '{name}' does not match the other columns of view "
                            f"'{view}' in row groups {groups.tolist()}: the dataset is corrupt"
                        )
                chunks.append((offsets, [a for _, a in lists]))
                if view in runs:  # coordinates made here, not views of the table
                    made = len(lists) - (len(names) - runs[view])
                    self.nbytes += offsets.nbytes + sum(a.nbytes for _, a in lists[:made])
            self.columns[view] = (bounds[0], chunks)

    def local(self, layout: Layout, rows: np.ndarray) -> np.ndarray:
        g = layout.group_of(rows)
        return self.start[np.searchsorted(self.groups, g)] + rows - layout.rg_first[g]


def _flat(arr: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """A list chunk's offsets (from 0) and its values, a view of the Arrow buffers."""
    off = arr.offsets.to_numpy()
    return off - off[0], arr.values.slice(off[0], off[-1] - off[0]).to_numpy(zero_copy_only=False)


def _run_columns(schema: pa.Schema, views: dict[str, list[str]]) -> dict[str, int]:
    """How many of the leading columns asked for each view are its runs (coordinates, lengths)."""
    specs = views_of(schema)
    out = {}
    for view, names in views.items():
        spec = specs.get(view)
        if spec is not None and spec.kind == "coo" and spec.coo_layout == "runs":
            coords = coord_columns(spec)
            if names[: len(coords)] == coords:
                out[view] = len(coords)
    return out


def _expand_runs(lists: list, n_runs: int, view: str, groups: np.ndarray) -> list:
    """(offsets, array) of runs (coordinates, then lengths) and channels -> every entry's
    coordinates, one per axis, with the entries' offsets, then the channels."""
    runs, values = lists[:n_runs], lists[n_runs:]
    run_offsets = runs[0][0]
    lengths = runs[-1][1]
    if any(not np.array_equal(off, run_offsets) for off, _ in runs) or (
        values and not np.array_equal(entry_offsets(lengths, run_offsets), values[0][0])
    ):
        raise DatasetError(
            f"the runs of view '{view}' do not match its values in row groups {groups.tolist()}: "
            "the dataset is corrupt"
        )
    offsets = entry_offsets(lengths, run_offsets)
    index = from_runs(tuple(a for _, a in runs[:-1]), lengths)
    return [(offsets, a) for a in index] + values


class WindowCache:
    """Thread-safe LRU of loaded windows; each is read once even when asked for concurrently."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.slots: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.loads = 0
        self.peak_bytes = 0

    def __getstate__(self):  # another process starts with an empty cache of the same size
        return {"capacity": self.capacity}

    def __setstate__(self, state):
        self.__init__(state["capacity"])

    def get(self, key, load) -> Window:
        with self.lock:
            slot = self.slots.get(key)
            if slot is None:
                slot = self.slots[key] = {"ready": threading.Event(), "window": None, "error": None}
                mine = True
                while len(self.slots) > self.capacity:
                    self.slots.popitem(last=False)
            else:
                self.slots.move_to_end(key)
                mine = False
        if mine:
            try:
                slot["window"] = load()
                with self.lock:
                    self.loads += 1
                    held = sum(s["window"].nbytes for s in self.slots.values() if s["window"] is not None)
                    self.peak_bytes = max(self.peak_bytes, held)
            except BaseException as err:
                slot["error"] = err
                with self.lock:
                    self.slots.pop(key, None)
                raise
            finally:
                slot["ready"].set()
        slot["ready"].wait()
        if slot["error"] is not None:
            raise slot["error"]
        return slot["window"]


class BatchSource:
    """Batches of one split: ``batch(i)`` -> (inputs, targets[, sample weights]) as numpy.

    ``y``, ``weights`` and ``centres`` are indexed by global row. With
    ``shuffle`` the order depends only on (``seed``, epoch); ``balance``
    resamples the rows every epoch (``undersample`` / ``oversample``).
    ``prefetch`` is how many batches the consumer prepares ahead (queue and
    workers): it sizes the window cache and the ring of reused dense buffers.

    ``batch_size`` is the global batch: ``batch(i)`` gives rank ``shard.rank``
    its ``batch_size / shard.world`` events of global batch ``i`` (the rule of
    :mod:`~nudask.train.shard`); ``len`` counts global batches, the same on
    every rank. ``drop_remainder`` drops a partial last batch. The default
    shard (rank 0 of 1) is the whole batch.
    """

    def __init__(
        self,
        layout: Layout,
        rows: np.ndarray,
        preps: dict[str, prepare.ViewPrep],
        columns: dict[str, list[str]],
        y: np.ndarray,
        *,
        batch_size: int,
        buffer_events: int,
        shuffle: bool = False,
        seed: int = 0,
        balance: str = "none",
        weights: np.ndarray | None = None,
        centres: dict[str, np.ndarray] | None = None,
        densify: str = "host",
        capacity: int = 16384,
        prefetch: int = 4,
        y_dtype=np.float32,
        flip_probability: float = 0.0,
        repeat: int = 1,
        augment: tuple[str, ...] = (),
        shard: Shard = WHOLE,
        drop_remainder: bool = False,
    ):
        self.layout, self.rows, self.preps, self.columns = layout, np.asarray(rows, np.int64), preps, columns
        self.y, self.weights, self.centres = y, weights, centres or {}
        self.batch_size, self.buffer_events = batch_size, buffer_events
        self.shuffle, self.seed, self.balance = shuffle, seed, balance
        self.densify, self.capacity, self.y_dtype = densify, capacity, y_dtype
        self.flip_probability, self.repeat = flip_probability, max(int(repeat), 1)
        self.augment = tuple(augment)
        self.shard, self.drop_remainder = shard, drop_remainder
        self.local_batch = local_batch_size(batch_size, shard.world)  # rows of a full batch here
        self.prefetch = prefetch
        # batches alive at once: ``prefetch`` queued or being made, the one being trained on,
        # one more the backend may hold (a tensor can alias the numpy buffer); the windows
        # those batches touch stay cached
        self.ring = prefetch + 2
        self.cache = WindowCache(1 + -(-(prefetch + 1) * batch_size // buffer_events))
        self.shapes = tuple(v for v, p in preps.items() if p.dense or p.crop == "centre")
        self._buffers: dict = {}
        self._lock = threading.Lock()
        self._plans: OrderedDict[int, Plan] = OrderedDict()  # epochs asked for besides the current one
        self.dropped = 0
        self.epoch = -1
        self._current: tuple[int, Plan | None] = (-1, None)  # (epoch, plan), replaced as one
        self.set_epoch(0)

    def __getstate__(self):  # worker processes build their own cache and buffers
        state = self.__dict__.copy()
        state.update(cache=WindowCache(self.cache.capacity), _buffers={}, _lock=None, _plans=OrderedDict())
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def resharded(self, shard: Shard) -> BatchSource:
        """This source for another rank: a copy with its own cache and buffers (or itself)."""
        if shard == self.shard:
            return self
        copy = BatchSource.__new__(BatchSource)
        copy.__setstate__(self.__getstate__())
        copy.shard, copy.local_batch = shard, local_batch_size(self.batch_size, shard.world)
        check_remainder(self.plan.order.size, self.batch_size, shard.world, self.drop_remainder)
        return copy

    def set_epoch(self, epoch: int) -> None:
        """Plan ``epoch`` (the same plan for the same seed and epoch, in any process)."""
        if epoch == self.epoch:
            return
        plan = self.plan_of(epoch)
        self._current = (epoch, plan)  # a batch made meanwhile reads an epoch and its plan together
        self.plan, self.epoch = plan, epoch

    def plan_of(self, epoch: int) -> Plan:
        """The plan of ``epoch``: the current one, or made and kept with the last few asked for."""
        current, plan = self._current
        if epoch == current and plan is not None:
            return plan
        with self._lock:
            plan = self._plans.get(epoch)
        if plan is None:
            plan = self._make_plan(epoch)
            with self._lock:
                self._plans[epoch] = plan
                while len(self._plans) > 2:
                    self._plans.popitem(last=False)
        return plan

    def _make_plan(self, epoch: int) -> Plan:
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        rows = np.repeat(self.rows, self.repeat) if self.repeat > 1 else self.rows  # augmentation copies
        if self.balance in ("undersample", "oversample"):
            rows = resample(rows, self.y[rows], self.balance, np.random.default_rng([self.seed, epoch, 1]))
        check_remainder(rows.size, self.batch_size, self.shard.world, self.drop_remainder)
        return plan_epoch(rows, self.layout, self.buffer_events, rng)

    def __len__(self) -> int:
        return n_batches(self.plan.order.size, self.batch_size, self.drop_remainder)

    @property
    def n_events(self) -> int:
        return int(self.plan.order.size)

    def positions(self, i: int, plan: Plan | None = None) -> slice:
        """This rank's positions of global batch ``i`` in the epoch's order."""
        n = (plan or self.plan).order.size
        return slice(*rank_slice(i, n, self.batch_size, self.shard))

    def batch_rows(self, i: int, epoch: int | None = None) -> np.ndarray:
        plan = self.plan if epoch is None else self.plan_of(epoch)
        return plan.order[self.positions(i, plan)]

    def _draws(self, epoch: int, i: int, pos: slice, n_events: int) -> tuple[np.random.Generator, int, int]:
        """The random draws of batch ``i``, made for the whole global batch, and this rank's part
        (offset, global batch size): an event draws the same on any number of ranks."""
        first = i * self.batch_size
        total = min(self.batch_size, n_events - first)
        return np.random.default_rng([self.seed, epoch, i, 2]), pos.start - first, total

    def batch(self, i: int, *, epoch: int | None = None, slot=None):
        """This rank's part of global batch ``i`` of the current epoch (or of ``epoch``).

        ``slot`` names the reused buffers the batch is written into: by default
        ``i % ring``, right for a consumer asking for batches in order, at most
        ``prefetch`` ahead; a consumer that skips batches (a batch worker) or asks
        from several threads at random passes its own (a counter, a thread id).
        """
        if epoch is None:
            epoch, plan = self._current
        else:
            plan = self.plan_of(epoch)
        assert plan is not None  # planned on construction
        if not 0 <= i < n_batches(plan.order.size, self.batch_size, self.drop_remainder):
            raise IndexError(f"batch {i} out of range ({len(self)} batches)")
        slot = i % self.ring if slot is None else slot
        pos = self.positions(i, plan)
        rows, wins = plan.order[pos], plan.window[pos]
        n = rows.size
        parts = []
        for w in np.unique(wins):
            window = self.cache.get(
                (epoch if self.shuffle else -1, w),
                lambda w=w: Window(self.layout, plan.windows[w], self.columns, self.shapes),
            )
            sel = np.flatnonzero(wins == w)
            parts.append((window, sel, window.local(self.layout, rows[sel])))
        x = {}
        for view, prep in self.preps.items():
            x.update(self._view_input(slot, view, prep, n, rows, parts))
        draws = self._draws(epoch, i, pos, plan.order.size)
        if self.flip_probability > 0:
            self._flip(slot, draws, x, n)
        if self.augment:  # the same draws for the same (seed, epoch, batch) in any worker or rank
            rng, offset, total = draws
            prepare.augment(list(x.values()), self.augment, rng, part=(offset, total))
            with self._lock:  # moved pixels: the buffers are zeroed whole next time
                for view in self.preps:
                    key = (view, slot)
                    self._buffers[key] = (self._buffers[key][0], None)
        y = self.y[rows].astype(self.y_dtype)
        if self.y_dtype == np.float32 and y.ndim == 1:
            y = y.reshape(-1, 1)
        if self.weights is not None:
            return x, y, self.weights[rows].astype(np.float32)
        return x, y

    def _flip(self, slot, draws, x: dict, n: int) -> None:
        """Mirror images along each axis with ``flip_probability`` (seeded by seed, epoch, batch)."""
        rng, offset, total = draws
        flips = rng.random((total, 2))[offset : offset + n] < self.flip_probability
        for view in self.preps:
            if view not in x:  # device densification: not flipped here
                continue
            img = x[view]
            for axis in (0, 1):
                sel = np.flatnonzero(flips[:, axis])
                if sel.size:
                    img[sel] = np.flip(img[sel], axis=axis + 1)
            if flips.any():
                with self._lock:  # the pixels written are no longer where densify put them: zero all
                    key = (view, slot)
                    self._buffers[key] = (self._buffers[key][0], None)

    def _entries(self, view, prep, parts, corner):
        """The batch's entries of ``view``: (image in the batch, row, col, value), and whether
        they are grouped by image.

        With a crop whose corner is known up front, only each image's rows inside the
        window are gathered.
        """
        out = []
        for window, sel, local in parts:
            bounds, chunks = window.columns[view]
            cid = np.searchsorted(bounds, local, side="right") - 1
            for c in np.unique(cid):
                mine = cid == c
                offsets, (ra, ca, va) = chunks[c]
                starts, lens = prepare.segments(offsets, local[mine] - bounds[c])
                if corner is not None and prep.window[0] < prep.shape[0]:
                    lo = corner[sel[mine], 0]
                    starts, lens = prepare.narrow(starts, lens, ra, lo, lo + prep.window[0])
                e = prepare.gather(starts, lens, ra, ca, va)
                out.append((sel[mine].astype(np.int32)[e[0]], *e[1:]))
        if len(out) == 1:
            return (*out[0], True)
        return (*(np.concatenate(a) for a in zip(*out)), False)

    def _buffer(self, view, slot, shape):
        with self._lock:
            key = (view, slot)
            buf, stale = self._buffers.get(key, (None, None))
            if buf is None:
                buf = np.zeros((self.local_batch, *shape, 1), np.float32)
            self._buffers[key] = (buf, None)  # in use: a failure below leaves it to be zeroed whole
        return key, buf, stale

    def _dense_input(self, slot, view, prep, n, rows, parts) -> dict:
        """A dense view's batch: each event's image pasted into its window (cut or padded)."""
        key, buf, _ = self._buffer(view, slot, prep.out_shape)
        out = buf[:n, ..., 0]
        out.fill(0)
        centres = self.centres[view][rows] if prep.crop == "vertex" else None
        for window, sel, local in parts:
            bounds, chunks = window.columns[view]
            shapes = window.shapes[view][local]
            cid = np.searchsorted(bounds, local, side="right") - 1
            for k, c, lr, shape in zip(sel, cid, local - bounds[cid], shapes):
                offsets, (values,) = chunks[c]
                image = values[offsets[lr] : offsets[lr + 1]].reshape(shape)
                corner = prepare.dense_origin(prep, image, None if centres is None else centres[k])
                prepare.paste(prep, out[k], image, corner)
        with self._lock:
            self._buffers[key] = (buf, None)
        return {view: buf[:n]}

    def _shapes(self, view, n, parts) -> np.ndarray:
        out = np.empty((n, 2), np.int64)
        for window, sel, local in parts:
            out[sel] = window.shapes[view][local]
        return out

    def _view_input(self, slot, view, prep, n, rows, parts) -> dict:
        if prep.dense:
            return self._dense_input(slot, view, prep, n, rows, parts)
        corner = None
        if prep.crop == "centre":
            corner = prepare.centre_origins(prep, self._shapes(view, n, parts))
        elif prep.crop != "centroid":
            corner = prepare.origins(prep, n, self.centres[view][rows] if prep.crop == "vertex" else None)
        image, r, c, v, grouped = self._entries(view, prep, parts, corner)
        if corner is None:
            corner = prepare.origins(prep, n, prepare.centroids(n, image, r, c, v, prep.shape))
        flat, val = prepare.place(prep, image, r, c, v, corner)
        h, w = prep.out_shape
        if self.densify == "device":
            if not grouped:  # pad_coo wants the entries grouped by image
                order = np.argsort(flat, kind="stable")
                flat, val = flat[order], val[order]
            idx = np.empty((n, self.capacity), np.int32)
            vals = np.empty((n, self.capacity), np.float32)
            dropped = prepare.pad_coo(prep, n, flat, val, self.capacity, idx, vals)
            if dropped:
                with self._lock:
                    self.dropped += dropped
            return {f"{view}_index": idx, f"{view}_value": vals}
        key, buf, stale = self._buffer(view, slot, (h, w))
        out = buf[:n]
        full = n == self.local_batch
        written = prepare.densify(prep, out, flat, val, stale if full else None)
        with self._lock:
            self._buffers[key] = (buf, written if full else None)
        return {view: out}
