"""Which events of an epoch's order a rank and a batch worker take: the sharding rule, pure Python.

An epoch's global order depends only on (seed, epoch). Global batch ``i``
covers positions ``[i*B, i*B + m)`` of that order (``B`` the global batch
size, ``m = min(B, n_events - i*B)``). Rank ``r`` of ``world`` takes the
contiguous slice ``[i*B + r*m // world, i*B + (r+1)*m // world)``: exactly
``b = B / world`` events of every full batch (``B`` must be divisible by the
world size), near-equal parts of a partial last batch. Within a rank, batch
worker ``w`` of ``n`` takes the batches ``i`` of a pass starting at batch
``s`` with ``(i - s) % n == w``: with ``s = 0``, ``i % n == w``. Counting from
the pass's first batch keeps a round-robin consumer (torch's ``DataLoader``
asks its workers in turn, from worker 0) in the global order after a resume
at any step. Nothing here depends on the world size but the slice, so a run
may resume at global batch ``s`` on any number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """A rank of a world; ``Shard()`` is the single process of today's training."""

    rank: int = 0
    world: int = 1

    def __post_init__(self):
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ConfigError(
                f"rank {self.rank} of world {self.world}: need world >= 1 and 0 <= rank < world"
            )


WHOLE = Shard()  # one process takes every batch whole


def local_batch_size(batch_size: int, world: int) -> int:
    """Events per rank of a full global batch; refuses a batch the ranks cannot share equally.

    >>> local_batch_size(32, 4)
    8
    """
    if batch_size % world:
        raise ConfigError(
            f"input.batch_size {batch_size} is not divisible by the world size {world}: every rank "
            f"takes batch_size / world events of each global batch; set input.batch_size to a "
            f"multiple of {world}"
        )
    return batch_size // world


def n_batches(n_events: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Global batches of an epoch of ``n_events``; ``drop_remainder`` drops a partial last one.

    >>> n_batches(10, 4), n_batches(10, 4, drop_remainder=True)
    (3, 2)
    """
    return n_events // batch_size if drop_remainder else -(-n_events // batch_size)


def rank_slice(i: int, n_events: int, batch_size: int, shard: Shard = WHOLE) -> tuple[int, int]:
    """Positions ``[lo, hi)`` of the epoch's order that ``shard`` takes of global batch ``i``.

    >>> [rank_slice(0, 10, 4, Shard(r, 2)) for r in (0, 1)]
    [(0, 2), (2, 4)]
    >>> [rank_slice(2, 10, 4, Shard(r, 2)) for r in (0, 1)]  # the partial last batch: 2 events
    [(8, 9), (9, 10)]
    """
    first = i * batch_size
    m = min(batch_size, n_events - first)
    return first + shard.rank * m // shard.world, first + (shard.rank + 1) * m // shard.world


def worker_batches(start: int, stop: int, worker: int = 0, workers: int = 1) -> range:
    """Global batches ``worker`` of ``workers`` makes in a pass over batches ``[start, stop)``.

    >>> list(worker_batches(0, 7, 1, 3)), list(worker_batches(4, 9, 0, 2))
    ([1, 4], [4, 6, 8])
    """
    if workers < 1 or not 0 <= worker < workers:
        raise ConfigError(f"batch worker {worker} of {workers}: need workers >= 1 and 0 <= worker < workers")
    return range(start + worker, stop, workers)


def check_remainder(n_events: int, batch_size: int, world: int, drop_remainder: bool) -> None:
    """Refuses a partial last batch too small to give every rank an event."""
    m = n_events % batch_size
    if world > 1 and not drop_remainder and 0 < m < world:
        raise ConfigError(
            f"the epoch's last batch holds {m} events, fewer than the {world} ranks: every rank needs "
            f"one; drop it (drop_remainder=True) or pick input.batch_size so that the remainder of "
            f"{n_events} events is 0 or at least {world}"
        )
