"""Where a dataset's files live: the manifest's name and each part's deterministic name.

The manifest itself is :class:`nudask.records.Manifest`, written once,
atomically, when a run ends; a folder without one is not (yet) a dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from ..events import Chunk
from ..records import FORMAT, MANIFEST, Manifest

__all__ = ["FORMAT", "MANIFEST", "Manifest", "part_name"]


def part_name(chunks: Chunk | Sequence[Chunk]) -> str:
    """Deterministic file name of the Parquet file of one chunk, or of chunks written together.

    >>> part_name(Chunk("/d/bnb_WithWire_00.h5", "reader", 0, 50))[:25]
    'part-bnb_WithWire_00-124b'
    >>> part_name([Chunk("/d/a.fits", "x", 0, 1), Chunk("/d/b.fits", "x", 0, 1)])[:22]
    'part-a-n00002-f6641dc2'
    """
    if isinstance(chunks, Chunk):
        chunks = [chunks]
    first = chunks[0]
    stem = os.path.splitext(os.path.basename(first.path))[0]
    if len(chunks) == 1:
        tag = hashlib.sha1(os.path.abspath(first.path).encode()).hexdigest()[:6]
        return f"part-{stem}-{tag}-{first.start:07d}-{first.stop:07d}.parquet"
    key = ";".join(f"{os.path.abspath(c.path)}:{c.start}:{c.stop}" for c in chunks)
    tag = hashlib.sha1(key.encode()).hexdigest()[:12]
    return f"part-{stem}-n{len(chunks):05d}-{tag}.parquet"
