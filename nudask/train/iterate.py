"""The training stream without Keras: numpy batches for any loop, PyTorch or JAX / Grain.

:class:`NumpyBatches` iterates one pass over an epoch's global batches (all
of them, or the rest of the epoch from a global step) of a
:class:`~nudask.train.stream.BatchSource`: the same order, split, crops,
balancing and bounded memory as ``python -m nudask.train``, because it is the
same source. Threads prepare batches ahead (pyarrow and numpy release the
GIL), as many as the Keras workers would. A rank's share and a batch
worker's follow :mod:`~nudask.train.shard`.

:class:`BatchRecords` is the random-access form (``len`` and ``[k]``, Grain's
``RandomAccessDataSource`` protocol): record ``k`` is global batch ``k`` of
the run counted across epochs, so a sampler that reads records in order gets
the training order, on any number of worker processes.

Nothing here imports Keras, TensorFlow, torch or jax.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .shard import n_batches, worker_batches
from .stream import BatchSource


def copied(batch: tuple) -> tuple:
    """A batch whose arrays own their memory (a source reuses its buffers a few batches on)."""
    x, *rest = batch
    return ({k: np.array(v) for k, v in x.items()}, *(np.array(a) for a in rest))


class NumpyBatches:
    """Batches ``(inputs, targets[, weights])`` of ``epoch`` as numpy, from global batch ``start``.

    ``stop`` ends the pass early (``train.steps_per_epoch``). ``worker`` of
    ``workers`` makes only its batches (every ``workers``-th from ``start``).
    ``threads`` prepare batches ahead (default: the source's ``prefetch``; 0:
    one at a time, in the calling thread). The arrays yielded are buffers
    reused a few batches later: use each batch before asking for the next
    ones, or pass ``copy=True``. One pass at a time per source: a pass sets the
    source's epoch.
    """

    def __init__(
        self,
        source: BatchSource,
        *,
        epoch: int = 0,
        start: int = 0,
        stop: int | None = None,
        worker: int = 0,
        workers: int = 1,
        threads: int | None = None,
        copy: bool = False,
    ):
        self.source, self.epoch, self.copy = source, epoch, copy
        plan = source.plan_of(epoch)  # the source's current epoch stays as it is until the pass
        total = n_batches(plan.order.size, source.batch_size, source.drop_remainder)
        last = total if stop is None else min(stop, total)
        self.batches = worker_batches(start, last, worker, workers)
        self.threads = source.prefetch if threads is None else threads

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple]:
        src = self.source
        src.set_epoch(self.epoch)
        finish = copied if self.copy else (lambda b: b)
        # the k-th batch of this pass writes into buffer slot k: a worker's batches are not
        # consecutive, and at most ``ahead`` of them are in flight beside the one yielded
        ahead = max(min(self.threads, src.ring - 2), 0)
        if ahead == 0:
            for k, i in enumerate(self.batches):
                yield finish(src.batch(i, slot=k % src.ring))
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="nudask-batches") as pool:
            pending: deque = deque()
            todo = iter(enumerate(self.batches))
            try:
                for k, i in todo:
                    pending.append(pool.submit(src.batch, i, slot=k % src.ring))
                    if len(pending) > ahead:
                        yield finish(pending.popleft().result())
                while pending:
                    yield finish(pending.popleft().result())
            finally:  # a consumer that stops early: drop what was asked for
                for f in pending:
                    f.cancel()


class BatchRecords:
    """Random access to a rank's batches over ``epochs`` epochs: record ``k`` is global batch
    ``start + k`` of the run (epoch ``(start + k) // L``, batch ``(start + k) % L``, ``L``
    batches an epoch).

    The form Grain reads (``grain.python.RandomAccessDataSource``: ``__len__``,
    ``__getitem__``), and a plain list-like for anything else. Records are
    copies (readers hold several at once, from several threads); memory stays
    that of a source (its window cache, one buffer set per reading thread).
    """

    def __init__(self, source: BatchSource, *, epochs: int = 1, start: int = 0):
        self.source, self.epochs, self.start = source, epochs, start
        plan = source.plan_of(0)
        self.per_epoch = n_batches(plan.order.size, source.batch_size, source.drop_remainder)

    def __len__(self) -> int:
        return max(self.epochs * self.per_epoch - self.start, 0)

    def __getitem__(self, k: int) -> tuple:
        if not 0 <= k < len(self):
            raise IndexError(f"record {k} out of range ({len(self)} records)")
        epoch, i = divmod(self.start + int(k), self.per_epoch)
        # buffers per reading thread: two threads never write into one
        return copied(self.source.batch(i, epoch=epoch, slot=("thread", threading.get_ident())))

    def __repr__(self) -> str:
        return f"BatchRecords({len(self)} batches, {self.epochs} epochs from batch {self.start})"
