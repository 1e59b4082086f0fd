"""The training stream as a ``torch.utils.data.IterableDataset`` (torch imported only when used).

:class:`TorchStream` yields ready batches (``DataLoader(stream, batch_size=None)``)
as torch tensors. It shards across ranks (``torch.distributed``'s rank and world
size when a process group is up, or as given) and across the ``DataLoader``'s
workers by the rule of :mod:`~nudask.train.shard`, so that the batches come out
in the global order of the epoch whatever the number of workers, and every
rank's share of a global batch arrives at the same step. :func:`assignment` is
that rule for one worker of one rank, in plain Python.
"""

from __future__ import annotations

from .iterate import NumpyBatches
from .shard import Shard, worker_batches
from .stream import BatchSource


def assignment(
    n_batches: int, *, start: int = 0, stop: int | None = None, worker: int = 0, workers: int = 1
) -> range:
    """The global batches one DataLoader worker of a rank yields in a pass ``[start, stop)``.

    Torch's ``DataLoader`` takes its workers' batches in turn from worker 0, so
    worker ``w`` makes batches ``start + w``, ``start + w + workers``, ...: the
    loader yields ``start, start + 1, ...`` in order.

    >>> list(assignment(10, start=3, worker=1, workers=2))
    [4, 6, 8]
    """
    last = n_batches if stop is None else min(stop, n_batches)
    return worker_batches(start, last, worker, workers)


def distributed_shard() -> Shard | None:
    """This process's rank and world size in ``torch.distributed``, if a process group is up."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return None


def _torch_stream_class():
    import numpy as np
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    def tensors(batch, copy: bool):
        def one(a):
            return torch.from_numpy(np.array(a) if copy else a)

        x, *rest = batch
        return ({k: one(v) for k, v in x.items()}, *(one(a) for a in rest))

    class TorchStream(IterableDataset):
        """One pass over ``epoch`` of ``source`` (from global batch ``start``) for a ``DataLoader``.

        ``rank`` / ``world`` default to ``torch.distributed``'s, else to the
        source's own shard. Call :meth:`set_epoch` before each epoch's pass (with
        ``persistent_workers=False``, the default, the workers start afresh each
        pass and see it); ``start`` resumes mid-epoch at a global step.
        """

        def __init__(
            self,
            source: BatchSource,
            *,
            epoch: int = 0,
            start: int = 0,
            stop: int | None = None,
            rank: int | None = None,
            world: int | None = None,
        ):
            super().__init__()
            if rank is not None or world is not None:
                shard = Shard(rank or 0, world or 1)
            else:
                shard = distributed_shard() or source.shard
            self.source = source.resharded(shard)
            self.epoch, self.start, self.stop = epoch, start, stop

        def set_epoch(self, epoch: int, start: int = 0) -> None:
            self.epoch, self.start = epoch, start

        def __len__(self) -> int:
            return len(NumpyBatches(self.source, epoch=self.epoch, start=self.start, stop=self.stop))

        def __iter__(self):
            info = get_worker_info()
            worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
            batches = NumpyBatches(
                self.source,
                epoch=self.epoch,
                start=self.start,
                stop=self.stop,
                worker=worker,
                workers=workers,
                # a worker process makes one batch at a time; the main process prepares ahead
                threads=0 if info is not None else None,
            )
            # in the main process the tensors would alias buffers reused a few batches on;
            # a worker's tensors are copied into shared memory on their way to the loader
            for batch in batches:
                yield tensors(batch, copy=info is None)

    TorchStream.__module__ = __name__
    return TorchStream


def __getattr__(name: str):
    if name == "TorchStream":  # made on first use: importing this module does not import torch
        cls = _torch_stream_class()
        globals()["TorchStream"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
