"""Reader registry: built-in readers plus the ``nudask.readers`` entry points.

Third-party packages add a format with an entry point, e.g. in pyproject.toml::

    [project.entry-points."nudask.readers"]
    myformat = "mypkg.reader:MyReader"
"""

from __future__ import annotations

import os
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from .base import Reader

DEFAULT_READER = "microboone"  # the demo's format, and `nudask simulate`'s without --format
# name -> "module:Class"; imported on first use
BUILTIN = {
    "microboone": "nudask.readers.microboone:MicroBooNEReader",
    "nova": "nudask.readers.nova:NOvAReader",
}


@cache
def _registry() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group="nudask.readers")}
    return {**found, **BUILTIN}


def available_readers() -> list[str]:
    """Names of the installed readers."""
    return sorted(_registry())


def reader_class(name: str) -> type[Reader]:
    try:
        target = _registry()[name]
    except KeyError:
        raise ValueError(
            f"unknown reader {name!r}; installed readers: {', '.join(available_readers())}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)


def get_reader(name: str | Reader, **options: Any) -> Reader:
    """A reader by name, configured with its ``options``."""
    if isinstance(name, Reader):
        if options:
            raise TypeError("pass options either to the reader or to get_reader, not both")
        return name
    return reader_class(name)(**options)


def guess_reader(path: str | os.PathLike[str]) -> str:
    """Name of the first installed reader that can open ``path``."""
    for name in available_readers():
        if reader_class(name).guess_can_open(path):
            return name
    raise ValueError(
        f"no reader recognises '{os.fspath(path)}'; pass reader=... "
        f"(installed: {', '.join(available_readers())})"
    )


__all__ = ["Reader", "available_readers", "get_reader", "guess_reader", "reader_class"]
