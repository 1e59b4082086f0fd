"""The reader contract: one small class per input format.

A reader sniffs files it can open, tells the views and metadata its events
carry, splits a file into chunks of events balanced by their cost, and reads
a chunk into :class:`~nudask.events.Event` values with rendered COO images.
Readers never import dask: parallelism is the pipeline's business.

A reader's options are the keyword arguments of its ``__init__`` (keyword-only
ones by convention): their defaults come from the signature, their help from
the class's ``OPTIONS`` table, else from a NumPy-style ``Parameters`` section
of the class or ``__init__`` docstring, else from the annotation.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..events import Chunk, Event, EventBatch, ViewSpec
from ..roles import Roles

# Metadata field types: numpy dtype string plus per-event shape; "str" for text.
FieldSpec = tuple[str, tuple[int, ...]]

REQUIRED = inspect.Parameter.empty  # the default of an option without one


@dataclass(frozen=True)
class ReaderOption:
    """One ``-O KEY=VALUE`` option of a reader, as ``nudask readers`` lists it."""

    name: str
    default: Any = REQUIRED
    help: str = ""
    annotation: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class Reader:
    """Base class of format readers (see :mod:`nudask.readers` for the registry)."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    #: option name -> help text (optional; see the module docstring)
    OPTIONS: ClassVar[Mapping[str, str]] = {}
    #: guessing order: lower first; ties go built-ins (in registry order), then plugins by name
    guess_priority: ClassVar[int] = 0
    #: defaults of ``events_per_chunk``, ``row_group_events`` and ``compression_level`` that suit
    #: this format's events (small ones, e.g. cluster images, want more per task and row group);
    #: they apply where neither the call nor the user's configuration sets one
    storage_hints: ClassVar[Mapping[str, int]] = {}

    def __init__(self) -> None:
        """A reader without options."""

    @classmethod
    def declared_options(cls) -> dict[str, ReaderOption]:
        """The options of this reader, in the order of ``__init__``'s parameters."""
        params = [
            p
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        helps = {**_docstring_params(cls.__init__.__doc__), **_docstring_params(cls.__doc__), **cls.OPTIONS}
        out = {}
        for p in params:
            annotation = (
                "" if p.annotation is p.empty else str(getattr(p.annotation, "__name__", p.annotation))
            )
            out[p.name] = ReaderOption(p.name, p.default, helps.get(p.name, ""), annotation)
        return out

    @classmethod
    def takes_any_option(cls) -> bool:
        """Whether ``__init__`` takes ``**kwargs`` (then option names cannot be checked)."""
        kinds = {p.kind for p in inspect.signature(cls.__init__).parameters.values()}
        return inspect.Parameter.VAR_KEYWORD in kinds

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
    def simulate(cls, *args: Any, **options: Any) -> list[str]:
        """Write simulated files in this format: ``simulate(out, *, files, events, seed, **options)``.

        ``files`` files of ``events`` events each go into folder ``out``; ``options``
        are the ones :attr:`simulate_options` lists.
        """
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

    def read_batch(self, chunk: Chunk) -> EventBatch | None:
        """Optional columnar read: the chunk's events as one :class:`~nudask.events.EventBatch`.

        A reader of many small events gives it so that the Parquet writer skips the
        per-event path; it must hold the same events as :meth:`read`. ``None``
        (the default): the reader yields events only.
        """
        return None

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


def _docstring_params(doc: str | None) -> dict[str, str]:
    """Parameter name -> its text, from the ``Parameters`` section of a NumPy-style docstring.

    >>> _docstring_params('''Reader.
    ...
    ...     Parameters
    ...     ----------
    ...     size : int
    ...         Pixels per side. Bigger is slower.
    ...     mode
    ...         ``fast`` or ``exact``.
    ... ''')
    {'size': 'Pixels per side. Bigger is slower.', 'mode': '``fast`` or ``exact``.'}
    """
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1]) if line.strip() == "Parameters") + 2
    except StopIteration:
        return {}
    out: dict[str, list[str]] = {}
    name = None
    for i in range(start, len(lines)):
        line, after = lines[i], lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"-{3,}", after.strip()):  # the title of the next section
            break
        if line and not line[0].isspace():
            name = line.split(":")[0].strip()
            out[name] = []
        elif name and line.strip():
            out[name].append(line.strip())
    return {k: " ".join(v) for k, v in out.items()}
