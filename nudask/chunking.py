"""Split a file's events into chunks of similar cost (pure)."""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


def balanced_bounds(weights: np.ndarray, events_per_chunk: int) -> list[int]:
    """Chunk boundaries over events, balanced by their weights (rows).

    Each chunk carries about ``events_per_chunk`` times the mean event
    weight, so a file of uneven events yields chunks of even cost. Every
    event lands in exactly one chunk, and no chunk is empty.

    >>> balanced_bounds(np.ones(10), 4)
    [0, 4, 7, 10]
    >>> balanced_bounds(np.array([9, 1, 1, 1, 1, 1, 1, 1, 1, 1]), 2)
    [0, 1, 3, 7, 10]
    >>> balanced_bounds(np.zeros(0), 3)
    []
    """
    if events_per_chunk < 1:
        raise ConfigError(f"events_per_chunk must be >= 1, got {events_per_chunk}")
    n = len(weights)
    if n == 0:
        return []
    w = np.asarray(weights, np.float64)
    w = np.where(w > 0, w, 1.0)  # an empty event still costs a little
    total = w.sum()
    n_chunks = -(-n // events_per_chunk)
    target = total / n_chunks
    # cut after the event where the running sum first reaches k * target
    cum = np.cumsum(w)
    cuts = np.searchsorted(cum, target * np.arange(1, n_chunks), side="left") + 1
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    return [int(b) for b in bounds]
