"""nudask's defaults (``nudask.yaml``), merged into ``dask.config`` on import."""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

_DEFAULTS = os.path.join(os.path.dirname(__file__), "nudask.yaml")

with open(_DEFAULTS) as _f:
    dask.config.update_defaults(yaml.safe_load(_f))


def get(key: str, value: Any = None) -> Any:
    """``value`` if given, else the configured ``nudask.<key>``."""
    return dask.config.get(f"nudask.{key}") if value is None else value
