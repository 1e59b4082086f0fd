"""nudask's defaults (``nudask.yaml``), registered in ``dask.config`` by ``import nudask``.

They are registered once, outside any ``dask.config.set`` block (``import nudask``
imports this module), so leaving such a block cannot drop them; :func:`get` also
falls back to them should a key be missing from ``dask.config`` all the same.
"""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

_DEFAULTS = os.path.join(os.path.dirname(__file__), "nudask.yaml")

with open(_DEFAULTS) as _f:
    DEFAULTS: dict = yaml.safe_load(_f)

dask.config.update_defaults(DEFAULTS)


def get(key: str, value: Any = None) -> Any:
    """``value`` if given, else the configured ``nudask.<key>`` (else nudask's default).

    >>> get("preprocess.events-per-chunk", 5), type(get("preprocess.events-per-chunk"))
    (5, <class 'int'>)
    """
    if value is not None:
        return value
    try:
        return dask.config.get(f"nudask.{key}")
    except KeyError:  # e.g. inside a dask.config.set({"nudask": {...}}) that replaced the section
        return dask.config.get(f"nudask.{key}", config=DEFAULTS)
