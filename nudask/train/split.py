"""Deterministic train / validation / test split by a hash of (run, subrun, event).

An event's split depends only on its identity and the split seed, never on the
file order, the chunking or which other events are in the dataset: the same
event always lands in the same split. The hash is splitmix64's finaliser
chained over the three ids (pure, vectorised numpy on uint64, wrapping).
"""

from __future__ import annotations

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
NAMES = ("train", "validation", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of ``x`` (uint64, elementwise, wraps modulo 2**64).

    >>> mix64(np.array([0, 1], np.uint64)).tolist()
    [16294208416658607535, 10451216379200822465]
    """
    z = np.asarray(x, np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def event_hash(run, subrun, event, seed: int = 0) -> np.ndarray:
    """64-bit hash of each (run, subrun, event) under ``seed``.

    >>> h = event_hash([1, 1], [2, 2], [3, 4])
    >>> h.dtype, bool(h[0] != h[1])
    (dtype('uint64'), True)
    """
    h = mix64(np.full(np.shape(run), seed, np.int64).astype(np.uint64))
    for ids in (run, subrun, event):
        h = mix64(h ^ np.asarray(ids, np.int64).astype(np.uint64))
    return h


def uniform(run, subrun, event, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per event, uniform over events, fixed by its ids and ``seed``.

    >>> u = uniform(np.zeros(10000), np.zeros(10000), np.arange(10000))
    >>> bool(0 <= u.min() and u.max() < 1), round(float(u.mean()), 1)
    (True, 0.5)
    """
    return (event_hash(run, subrun, event, seed) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def assign(run, subrun, event, *, test: float = 0.25, validation: float = 0.1, seed: int = 0) -> np.ndarray:
    """Split code per event: 0 train, 1 validation, 2 test.

    ``test`` is the fraction of all events; ``validation`` the fraction of the
    remaining (training) events carved out for validation. With the defaults:
    67.5 % train, 7.5 % validation, 25 % test.

    >>> s = assign(np.full(20000, 7), np.ones(20000), np.arange(20000))
    >>> [round(float(np.mean(s == k)), 2) for k in (TRAIN, VALIDATION, TEST)]
    [0.67, 0.08, 0.25]
    >>> bool((assign([7], [1], [123]) == s[123]).all())   # alone or among others
    True
    """
    if not (0 <= test < 1 and 0 <= validation < 1):
        raise ValueError(f"split fractions must be in [0, 1): test={test}, validation={validation}")
    u = uniform(run, subrun, event, seed)
    out = np.full(u.shape, TRAIN, np.int8)
    out[u < test] = TEST
    rest = (u - test) / (1.0 - test)  # uniform in [0, 1) again on the non-test events
    out[(u >= test) & (rest < validation)] = VALIDATION
    return out


def code(name: str) -> int:
    """Split code of a split name.

    >>> code("test")
    2
    """
    try:
        return NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown split {name!r}; use one of {NAMES}") from None
