"""The Keras face of a :class:`~nudask.train.stream.BatchSource`: a small ``PyDataset``.

Batches are prepared ahead by ``workers`` threads (pyarrow and numpy do the
work outside the GIL) or processes, ``max_queue_size`` deep. The epoch, and so
the shuffled order, is set by :class:`EpochSync` before Keras starts fetching
the epoch's batches; the same epoch number always gives the same order.
A stream may cover part of an epoch (``start``, ``stop``): its ``k``-th batch
is global batch ``start + k``, so Keras' step ``k`` of a resumed epoch is the
batch the interrupted run had not trained, and every epoch of a capped run
(``train.steps_per_epoch``) starts at its own first batch.
"""

from __future__ import annotations

import keras

from .iterate import copied
from .stream import BatchSource


class KerasStream(keras.utils.PyDataset):
    """Global batches ``[start, stop)`` of a :class:`BatchSource` for ``model.fit`` / ``evaluate``
    / ``predict`` (default: all of them)."""

    def __init__(
        self,
        source: BatchSource,
        *,
        workers: int = 2,
        use_multiprocessing: bool = False,
        max_queue_size: int = 4,
        start: int = 0,
        stop: int | None = None,
        copies: bool = False,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.source, self.start, self.stop = source, start, stop
        self.copies = copies

    def __len__(self) -> int:
        stop = len(self.source) if self.stop is None else min(self.stop, len(self.source))
        return max(stop - self.start, 0)

    def __getitem__(self, index: int):
        batch = self.source.batch(self.start + index)
        # a distributed input pipeline (several replicas) holds more batches than the ring of
        # reused buffers: its tensors may alias them, so it gets arrays of its own
        return copied(batch) if self.copies else batch


def stream(
    source: BatchSource, cfg_input, *, start: int = 0, stop: int | None = None, copies: bool = False
) -> KerasStream:
    """A :class:`KerasStream` with the parallelism of the ``input`` config section;
    ``copies``: batches in arrays of their own (several replicas)."""
    return KerasStream(
        source,
        workers=cfg_input.workers,
        use_multiprocessing=cfg_input.use_multiprocessing,
        max_queue_size=cfg_input.max_queue_size,
        start=start,
        stop=stop,
        copies=copies,
    )


class EpochSync(keras.callbacks.Callback):
    """Sets the epoch of the training stream (its shuffle seed) as each epoch begins."""

    def __init__(self, *streams: KerasStream):
        super().__init__()
        self.streams = streams

    def on_epoch_begin(self, epoch, logs=None):
        for s in self.streams:
            s.source.set_epoch(epoch)
