"""The reader contract: one small class per input format.

A reader sniffs files it can open, tells the views and metadata its events
carry, splits a file into chunks of events balanced by their cost, and reads
a chunk into :class:`~nudask.events.Event` values with rendered COO images.
Readers never import dask: parallelism is the pipeline's business.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ..events import Chunk, Event, ViewSpec
from ..roles import Roles

# Metadata field types: numpy dtype string plus per-event shape; "str" for text.
FieldSpec = tuple[str, tuple[int, ...]]


class Reader:
    """Base class of format readers (see :mod:`nudask.readers` for the registry)."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"reader '{self.name}' takes no option {sorted(options)}")

    # -- what the files hold -------------------------------------------------
    @classmethod
    def guess_can_open(cls, path: str | os.PathLike[str]) -> bool:
        """Cheap guess from the name (and maybe a peek inside) that this reader fits."""
        return os.fspath(path).endswith(cls.suffixes)

    def options(self) -> dict[str, Any]:
        """Settings that change the output, as recorded in the manifest."""
        return {}

    # -- simulated files (``nudask simulate --format NAME``) ----------------------
    #: options of :meth:`simulate` (``-O KEY=VALUE``) and their help; empty: no simulator
    simulate_options: ClassVar[dict[str, str]] = {}

    @classmethod
    def simulate(cls, out: str, *, files: int, events: int, seed: int, **options: Any) -> list[str]:
        """Write ``files`` simulated files of ``events`` events into folder ``out``, in this format."""
        raise NotImplementedError(f"reader '{cls.name}' has no simulator")

    def roles(self) -> Roles:
        """What the metadata columns mean (recorded in the manifest; see :mod:`nudask.roles`)."""
        return Roles()

    def views(self, path: str) -> dict[str, ViewSpec]:
        """The views of ``path``'s events; the pipeline merges them over all inputs."""
        raise NotImplementedError

    def metadata_fields(self, path: str) -> dict[str, FieldSpec]:
        raise NotImplementedError

    def event_weights(self, path: str) -> np.ndarray:
        """Relative cost of each event of ``path`` (one entry per event).

        Raises :class:`~nudask.errors.InputError` when the file cannot be used.
        """
        raise NotImplementedError

    def read(self, chunk: Chunk) -> Iterator[Event]:
        raise NotImplementedError

    # -- derived -------------------------------------------------------------
    def chunks(self, path: str, events_per_chunk: int) -> list[Chunk]:
        """Split ``path`` into chunks of about ``events_per_chunk`` events' worth of rows."""
        from ..chunking import balanced_bounds

        bounds = balanced_bounds(self.event_weights(path), events_per_chunk)
        return [Chunk(os.fspath(path), self.name, a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.options() == other.options()

    def __hash__(self) -> int:
        return hash((type(self), repr(sorted(self.options().items()))))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"
