"""What the labelling server does, without HTTP: queue, images, labels, QA, consensus export.

Events are shown as rows of the dataset; labels are stored by the event's
identity (the ``identity`` role, default ``run/subrun/event``). The classes
are the vocabulary of one label role of the dataset (its first by default).
"""

from __future__ import annotations

import io
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..dataset import open_dataset
from ..errors import ConfigError, DataError, OutputError
from . import agreement
from .store import EventComplete, LabelStore

MAX_ZOOM = 8.0
EXPORT_META = b"nudask.labels"  # schema metadata key of an exported table: its role and classes


class BadRequest(Exception):
    """A request the server answers with a 4xx status and this message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def shortcuts(classes: tuple[str, ...]) -> dict[str, str]:
    """A key per class: 1-9 and 0 for the first ten, and the first free letter of each name.

    >>> shortcuts(("muon", "electron", "blob", "alpha", "other"))["m"], shortcuts(("a", "ab"))["b"]
    ('muon', 'ab')
    """
    keys: dict[str, str] = {}
    for k, c in enumerate(classes[:10]):
        keys[str((k + 1) % 10)] = c
    for c in classes:
        for ch in c.lower():
            if ch.isalpha() and ch not in keys:
                keys[ch] = c
                break
    return keys


@dataclass
class Labelling:
    """The labelling of the dataset at ``path``: ``k`` annotators per event."""

    path: str
    k: int = 2
    role: str | None = None
    classes: tuple[str, ...] = ()
    unit: str | None = None

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, not {self.k}")
        self.ds = open_dataset(self.path)
        roles = self.ds.roles
        if self.role is not None and self.role not in roles.labels:
            have = ", ".join(roles.labels) or "none"
            raise ConfigError(f"label role '{self.role}' is not one of this dataset's label roles ({have})")
        if self.role is None and roles.labels:
            self.role = next(iter(roles.labels))
        if not self.classes:
            label = roles.labels.get(self.role) if self.role else None
            self.classes = tuple(label.classes) if label else ()
        self.classes = tuple(self.classes)
        if len(self.classes) < 2:
            raise ConfigError(
                f"dataset '{self.path}' declares no label role with a class vocabulary: "
                "pass the classes with --classes a,b,c"
            )
        self.role = self.role or "label"
        meta = self.ds.metadata
        missing = [c for c in roles.identity if c not in meta]
        if missing:
            raise DataError(f"dataset '{self.path}' lacks its identity columns {missing}")
        self.identity = tuple(roles.identity)
        self.keys = ["/".join(str(v) for v in row) for row in meta[list(self.identity)].itertuples(False)]
        if len(set(self.keys)) != len(self.keys):
            raise DataError(
                f"dataset '{self.path}': events share an identity ({', '.join(self.identity)}); "
                "labels are stored by it, so each event needs its own"
            )
        self.row_of = {key: i for i, key in enumerate(self.keys)}
        hidden = set(roles.labels[self.role].columns) if self.role in roles.labels else set()
        self.feature_columns = [c for c in meta.columns if c not in hidden]
        self.meta = meta
        self.units = getattr(roles, "units", {}) or {}
        self.store = LabelStore.beside(self.path)
        self.keymap = shortcuts(self.classes)
        self._read_lock = threading.Lock()

    # -- checks of a request's values ---------------------------------------------
    def row(self, value: Any) -> int:
        try:
            i = int(value)
        except (TypeError, ValueError):
            raise BadRequest(400, f"event must be a row number, not {value!r}") from None
        if isinstance(value, bool) or not 0 <= i < len(self.keys) or str(value).strip() != str(i):
            raise BadRequest(404, f"no event {value!r}: this dataset has events 0 to {len(self.keys) - 1}")
        return i

    def check_class(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.classes:
            raise BadRequest(400, f"unknown class {value!r}: the classes are {', '.join(self.classes)}")
        return value

    @staticmethod
    def check_annotator(value: Any) -> str:
        name = value.strip() if isinstance(value, str) else ""
        if not name:
            raise BadRequest(400, "missing annotator: give your name (annotator)")
        if len(name) > 64 or any(not ch.isprintable() for ch in name):
            raise BadRequest(400, "annotator names are at most 64 printable characters")
        return name

    # -- annotating -----------------------------------------------------------------
    def next_event(self, annotator: str, after: int = -1) -> int | None:
        """The first event after row ``after`` that has fewer than ``k`` labels and none by
        ``annotator`` (wrapping round to the start); None when there is none left."""
        counts, mine, settled = self.store.counts(), self.store.done_by(annotator), self.store.settled()
        n = len(self.keys)
        for step in range(1, n + 1):
            i = (after + step) % n
            key = self.keys[i]
            if key not in mine and key not in settled and counts.get(key, 0) < self.k:
                return i
        return None

    def progress(self, annotator: str | None = None) -> dict[str, Any]:
        counts = self.store.counts()
        full = sum(1 for key in self.keys if counts.get(key, 0) >= self.k)
        out = {"events": len(self.keys), "complete": full, "labels": sum(counts.values())}
        if annotator:
            out["mine"] = len(self.store.done_by(annotator))
        return out

    def event(self, i: int) -> dict[str, Any]:
        row = self.meta.iloc[i]
        features = {c: _plain(row[c]) for c in self.feature_columns}
        ids = {c: _plain(row[c]) for c in self.identity}
        return {"event": i, "key": self.keys[i], "id": ids, "features": features}

    def save(self, i: int, annotator: str, label: str) -> bool:
        """Save a label of event ``i`` (True: a new one, False: it replaced the annotator's own);
        refused with a 409 when the event already has its ``k`` labels from others, or was settled."""
        try:
            return self.store.save(self.keys[i], annotator, label, k=self.k)
        except EventComplete as err:
            raise BadRequest(409, str(err)) from None

    def settle(self, i: int, annotator: str, label: str) -> None:
        self.store.settle(self.keys[i], annotator, label)

    # -- images -----------------------------------------------------------------------
    def png(self, i: int, zoom: float = 1.0) -> bytes:
        """Every view of event ``i`` as one PNG, a colour bar in the view's unit; ``zoom`` scales it."""
        from matplotlib.figure import Figure

        if not (math.isfinite(zoom) and 0.25 <= zoom <= MAX_ZOOM):
            raise BadRequest(400, f"zoom must be between 0.25 and {MAX_ZOOM:g}, not {zoom}")
        with self._read_lock:  # a dataset's part readers are not shared across threads
            images = self.ds.image(i)
        fig = Figure(figsize=(4.2 * len(images), 4.0), dpi=80 * zoom)
        for k, (name, img) in enumerate(images.items()):
            ax = fig.add_subplot(1, len(images), k + 1)
            if img.ndim != 2:
                img = img.reshape(img.shape[0], -1) if img.ndim > 2 else img.reshape(1, -1)
            im = ax.imshow(img, origin="lower", cmap="viridis", interpolation="nearest", aspect="equal")
            axes = self.ds.views[name].axes
            ax.set_xlabel(axes[-1])
            ax.set_ylabel(axes[0])
            ax.set_title(name)
            unit = self.unit or self.units.get(name) or self.units.get("*") or "value"
            fig.colorbar(im, ax=ax, label=unit, shrink=0.8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    # -- QA and consensus -----------------------------------------------------------
    def _table(self):
        rows = self.store.labels()
        keys = list(dict.fromkeys(k for k, _, _ in rows if k in self.row_of))
        at = {k: n for n, k in enumerate(keys)}
        col = {c: j for j, c in enumerate(self.classes)}
        counts = np.zeros((len(keys), len(self.classes)), np.int64)
        by: dict[str, dict[str, str]] = {}
        for key, who, label in rows:
            if key in at and label in col:
                counts[at[key], col[label]] += 1
                by.setdefault(who, {})[key] = label
        return keys, counts, by

    def qa(self) -> dict[str, Any]:
        """Agreement figures and the events the annotators disagree on."""
        keys, counts, by = self._table()
        settled = self.store.settled()
        annotators = sorted(by)
        pairs = []
        for a_i, a in enumerate(annotators):
            for b in annotators[a_i + 1 :]:
                common = [key for key in by[a] if key in by[b]]
                if common:
                    kappa = agreement.cohen_kappa([by[a][c] for c in common], [by[b][c] for c in common])
                    pairs.append({"annotators": [a, b], "events": len(common), "cohen_kappa": _num(kappa)})
        rated = counts.sum(1)
        multi = rated >= 2
        per_class = agreement.class_agreement(counts[multi])
        disagree = [
            {
                **self.event_brief(key),
                "votes": {c: int(n) for c, n in zip(self.classes, counts[j]) if n},
                "labels": {who: by[who][key] for who in annotators if key in by[who]},
                "settled": settled.get(key, (None,))[0],
            }
            for j, key in enumerate(keys)
            if multi[j] and (counts[j] > 0).sum() > 1
        ]
        return {
            "classes": list(self.classes),
            "annotators": {a: len(by[a]) for a in annotators},
            "events_labelled": len(keys),
            "events_multiple": int(multi.sum()),
            "raw_agreement": _num(float(np.mean([(c > 0).sum() == 1 for c in counts[multi]])))
            if multi.any()
            else None,
            "cohen_kappa": pairs[0]["cohen_kappa"] if len(annotators) == 2 and pairs else None,
            "pairs": pairs,
            "fleiss_kappa": _num(agreement.fleiss_kappa(counts)),
            "per_class": {c: _num(a) for c, a in zip(self.classes, per_class)},
            "disagreements": disagree,
        }

    def event_brief(self, key: str) -> dict[str, Any]:
        return {"event": self.row_of[key], "key": key}

    def consensus(self) -> pa.Table:
        """One row per labelled event: its identity, the majority class (null on a tie, unless
        settled), ``tie``, the vote counts and who settled it."""
        keys, counts, _ = self._table()
        settled = self.store.settled()
        keys += [k for k in settled if k not in keys and k in self.row_of]
        counts = np.vstack([counts, np.zeros((len(keys) - len(counts), len(self.classes)), np.int64)])
        best, tie = agreement.majority(counts)
        rows = [self.row_of[k] for k in keys]
        ids = self.meta[list(self.identity)].iloc[rows].reset_index(drop=True)
        consensus, source, settler = [], [], []
        for j, key in enumerate(keys):
            if key in settled:
                consensus.append(settled[key][0])
                source.append("settled")
                settler.append(settled[key][1])
            else:
                consensus.append(None if best[j] < 0 else self.classes[best[j]])
                source.append("tie" if tie[j] else "majority")
                settler.append(None)
        table = pd.DataFrame(
            {
                **{c: ids[c].to_numpy() for c in self.identity},
                "consensus": pd.array(consensus, dtype="string"),
                "tie": np.array([s == "tie" for s in source], bool),
                "n_labels": counts.sum(1).astype(np.int32),
                "votes": counts.max(1, initial=0).astype(np.int32),
                "source": source,
                "settled_by": pd.array(settler, dtype="string"),
            }
        )
        out = pa.Table.from_pandas(table, preserve_index=False)
        import json

        tag = json.dumps({"role": self.role, "classes": list(self.classes), "identity": list(self.identity)})
        return out.replace_schema_metadata({**(out.schema.metadata or {}), EXPORT_META: tag.encode()})

    def export(self, out: str | os.PathLike[str]) -> pa.Table:
        table = self.consensus()
        try:
            pq.write_table(table, os.fspath(out))
        except OSError as err:
            raise OutputError(f"cannot write '{os.fspath(out)}': {err.strerror or err}") from None
        return table

    def export_bytes(self) -> bytes:
        buf = pa.BufferOutputStream()
        pq.write_table(self.consensus(), buf)
        return buf.getvalue().to_pybytes()


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _plain(v: Any) -> Any:
    """A metadata value as JSON can carry it."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    return str(v)
