"""The manifest beside a dataset's Parquet files: what went in, what came out.

Written once, atomically, when a run ends; a folder without one is not
(yet) a dataset. Its part files are named deterministically from their chunk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

from ..errors import DatasetError, DatasetNotFoundError
from ..events import Chunk
from ..schema import SCHEMA_VERSION

MANIFEST = "_manifest.json"  # "_" prefix: Parquet readers skip it
FORMAT = "nudask-dataset"


def part_name(chunk: Chunk) -> str:
    """Deterministic file name of a chunk's Parquet file.

    >>> part_name(Chunk("/d/bnb_WithWire_00.h5", "microboone", 0, 50))[:25]
    'part-bnb_WithWire_00-124b'
    """
    stem = os.path.splitext(os.path.basename(chunk.path))[0]
    tag = hashlib.sha1(os.path.abspath(chunk.path).encode()).hexdigest()[:6]
    return f"part-{stem}-{tag}-{chunk.start:07d}-{chunk.stop:07d}.parquet"


def new_manifest(**fields) -> dict:
    from .. import __version__

    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "nudask_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **fields,
    }


def write_manifest(folder: str, manifest: dict) -> str:
    path = os.path.join(folder, MANIFEST)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_manifest(folder: str) -> dict:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"no dataset at '{folder}'")
    if not os.path.exists(path):
        raise DatasetError(
            f"'{folder}' has no {MANIFEST}: not a nudask dataset, or its run did not finish "
            "(run nudask preprocess again to complete it)"
        )
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"'{path}' is not a nudask manifest")
    return manifest
