"""nudask: neutrino detector readout -> sparse Parquet training data, on Dask.

>>> import nudask
>>> nudask.preprocess(["bnb_WithWire_00.h5"], out="bnb.parquet")  # doctest: +SKIP
>>> ds = nudask.open_dataset("bnb.parquet")                        # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# nudask's defaults join dask.config now, outside any ``dask.config.set`` block
# (which would drop them on exit); that needs only dask.config and yaml.
from . import config as config

# Public names resolve on first use so that ``import nudask`` stays light
# (no distributed, pyarrow or h5py until they are needed).
_LAZY = {
    "preprocess": "nudask.pipeline",
    "open_dataset": "nudask.dataset",
    "Dataset": "nudask.dataset",
    "get_reader": "nudask.readers",
    "InputError": "nudask.errors",
}

__all__ = ["Dataset", "InputError", "__version__", "get_reader", "open_dataset", "preprocess"]

if TYPE_CHECKING:
    from .dataset import Dataset, open_dataset
    from .errors import InputError
    from .pipeline import preprocess
    from .readers import get_reader


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name.startswith("simulate_"):  # each format's simulator, e.g. nudask.simulate_<format>
        module = import_module("nudask.simulate")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'nudask' has no attribute {name!r}")
