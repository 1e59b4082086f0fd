"""``task.labels: PATH``: class labels from a table keyed by event id, in place of the truth.

The table (e.g. ``nudask label DATASET --export labels.parquet``) has the
dataset's identity columns (``run``, ``subrun``, ``event``) and a
``consensus`` column of class names (null: no label, e.g. a tie). It becomes
the label role its schema metadata names (``nudask.labels``: role and
classes; without it a role ``consensus`` over the classes it holds), so
``task.target`` names that role (or ``ROLE:CLASS``) as for any label. Events
the table does not label are left out of training, validation and test.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..roles import Label, Roles

COLUMN = "labels:consensus"  # the metadata column the table's labels are joined into
META_KEY = b"nudask.labels"


def read_labels(path: str, roles: Roles) -> tuple[Roles, pd.DataFrame]:
    """The roles with the table's label role, and the table (identity columns and :data:`COLUMN`)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(path, "no such labels table", "check task.labels (a Parquet file)") from None
    except (OSError, pa.ArrowException) as err:
        raise InputError(path, f"not a readable Parquet table ({err})", "check task.labels") from None
    ids = list(roles.identity)
    missing = [c for c in [*ids, "consensus"] if c not in table.column_names]
    if missing:
        raise InputError(
            path, f"lacks the columns {missing}", "a labels table has the event id and consensus"
        )
    tag = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    frame = table.select([*ids, "consensus"]).to_pandas()
    frame["consensus"] = frame["consensus"].astype("string")
    if frame.duplicated(ids).any():
        raise InputError(path, "labels some events twice", "keep one row per event id")
    classes = tuple(tag.get("classes") or sorted(frame["consensus"].dropna().unique()))
    unknown = sorted(set(frame["consensus"].dropna()) - set(classes))
    if unknown:
        raise InputError(path, f"has labels {unknown} outside its classes {list(classes)}", "re-export it")
    role = tag.get("role") or "consensus"
    labels = {**roles.labels, role: Label(classes, column=COLUMN)}
    return dataclasses.replace(roles, labels=labels), frame.rename(columns={"consensus": COLUMN})


def join(meta: pd.DataFrame, table: pd.DataFrame, identity: tuple[str, ...]) -> pd.DataFrame:
    """``meta`` with :data:`COLUMN` from ``table`` by event id; "" where the table has no label."""
    ids = list(identity)
    keyed = table.astype({c: meta[c].dtype for c in ids}, errors="ignore")
    out = meta.merge(keyed, on=ids, how="left", validate="many_to_one")
    out.index = meta.index
    out[COLUMN] = np.asarray(out[COLUMN].fillna("").astype(str), dtype=object)
    return out
