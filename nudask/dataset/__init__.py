"""nudask datasets: partitioned Parquet files plus a manifest."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__all__ = ["Dataset", "open_dataset"]

if TYPE_CHECKING:
    from .read import Dataset, open_dataset


def __getattr__(name: str):
    # the reader (pandas, pyarrow.dataset) loads on first use: workers that only write
    # parts import nudask.dataset.write through this package and never need it
    if name in __all__:
        return getattr(import_module(".read", __name__), name)
    raise AttributeError(f"module 'nudask.dataset' has no attribute {name!r}")
