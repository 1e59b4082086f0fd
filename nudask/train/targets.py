"""Targets from the truth metadata, read through the roles the reader declared; selections.

The roles (:mod:`nudask.roles`) are mapped once onto common truth columns (:func:`truth`):

=============  ===========================================================
``energy``     the energy role (true neutrino or particle energy); NaN without one
``lep_energy`` the particle-energy role (outgoing lepton or particle)
``category``   class names of the headline label (the reader's first label role)
``mode``       class names of the ``mode`` label, where the format has one, else empty
=============  ===========================================================

A :class:`Task` turns them into labels. ``task.target`` names:

- a label role (``flavour``, ``mode``, ``main_track``, ...): its classes
  (binary when it has two);
- ``LABEL:CLASS``: that class against the rest (binary); ``nue_cc`` and
  ``numu_cc`` are short for ``flavour:nue_cc`` and ``flavour:numu_cc``;
- ``energy`` or ``lepton_fraction`` (particle over true energy): a regression;
- a vector role (``direction``, ...): a unit vector, kind ``vector``
  (:mod:`nudask.train.vectors`).

A target whose role the dataset's reader does not declare is refused, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import selection
from ..errors import ConfigError
from ..roles import Roles

ALIASES = {"nue_cc": "flavour:nue_cc", "numu_cc": "flavour:numu_cc"}
REGRESSIONS = ("energy", "lepton_fraction")
TRUTH_COLUMNS = ("energy", "lep_energy", "mode", "category")  # what truth() makes besides labels


@dataclass(frozen=True)
class Task:
    """What a model learns: ``kind`` is binary, classes or regression.

    ``label`` is the label role the classes come from; ``positive`` the class
    a one-vs-rest binary task picks out of it.
    """

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    label: str | None = None
    positive: str | None = None
    dims: int = 1  # components of a vector target

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.kind == "classes" else self.dims

    @property
    def numeric(self) -> bool:
        """A regression or a vector: no classes."""
        return self.kind in ("regression", "vector")


def make_task(name: str, roles: Roles) -> Task:
    """The task ``task.target: name`` asks for, checked against the dataset's roles."""
    where = f"task.target: {name}"
    if name in REGRESSIONS:
        roles.need("energy", where)
        if name == "lepton_fraction":
            roles.need("particle_energy", where)
        return Task(name, "regression")
    if name in roles.vectors:
        return Task(name, "vector", dims=len(roles.vectors[name].columns))
    label_name, _, positive = ALIASES.get(name, name).partition(":")
    label = roles.label(label_name, where)
    if positive:
        if label.classes and positive not in label.classes:
            raise ConfigError(
                f"{where}: '{positive}' is not a class of label '{label_name}' {list(label.classes)}"
            )
        return Task(name, "binary", ("rest", positive.replace("_cc", " CC")), label_name, positive)
    if len(label.classes) < 2:
        raise ConfigError(f"{where}: label '{label_name}' has no class vocabulary to learn")
    kind = "binary" if len(label.classes) == 2 else "classes"
    return Task(name, kind, tuple(label.classes), label_name)


def required_columns(task: Task, roles: Roles, crop: str = "none") -> list[str]:
    """Metadata columns training reads for ``task`` (and for a vertex crop)."""
    cols = list(roles.identity)
    for q in (roles.energy, roles.particle_energy):
        if q is not None:
            cols.append(q.column)
    for name, label in roles.labels.items():
        if name == task.label or name == "mode" or name == next(iter(roles.labels)):
            cols += label.columns
    if task.kind == "vector":
        cols += list(roles.vectors[task.name].columns)
    if crop == "vertex":
        if not roles.centres:
            raise ConfigError(
                "input.crop: vertex needs the vertex in pixels (the centres role), which this "
                "dataset's reader does not declare; use crop: centroid or fixed"
            )
        cols += [c for centre in roles.centres.values() for c in (centre.row.column, centre.col.column)]
    return list(dict.fromkeys(cols))


def truth(meta: pd.DataFrame, roles: Roles) -> pd.DataFrame:
    """The common truth columns (see the module doc) from the roles."""
    out = pd.DataFrame(index=meta.index)
    nan = np.full(len(meta), np.nan)
    out["energy"] = meta[roles.energy.column].to_numpy(np.float64) if roles.energy else nan
    out["lep_energy"] = (
        meta[roles.particle_energy.column].to_numpy(np.float64) if roles.particle_energy else nan
    )
    labels = list(roles.labels.values())
    out["category"] = labels[0].names(meta) if labels else ""
    out["mode"] = roles.labels["mode"].names(meta) if "mode" in roles.labels else ""
    for name, label in roles.labels.items():
        out[f"label:{name}"] = label.names(meta)
    for name, vec in roles.vectors.items():
        if all(c in meta for c in vec.columns):
            for k, v in enumerate(vec.values(meta).T):
                out[f"vector:{name}:{k}"] = v
    return out


def labels(t: pd.DataFrame, task: Task) -> np.ndarray:
    """Label per event: 0/1, a class index (-1: not one of the classes) or a float (NaN: none).

    >>> t = pd.DataFrame({"label:flavour": ["nue_cc", "nc"], "energy": [2., 0.], "lep_energy": [1., 0.]})
    >>> labels(t, Task("nue_cc", "binary", ("rest", "nue CC"), "flavour", "nue_cc")).tolist()
    [1, 0]
    >>> labels(t, Task("lepton_fraction", "regression")).tolist()
    [0.5, nan]
    """
    if task.kind == "vector":
        from .vectors import unit

        return unit(
            np.stack([t[f"vector:{task.name}:{k}"].to_numpy(np.float64) for k in range(task.dims)], 1)
        )
    if task.kind != "regression":
        names = t[f"label:{task.label}"].to_numpy()
        if task.positive is not None:
            return (names == task.positive).astype(np.int64)
        lookup = {c: k for k, c in enumerate(task.classes)}
        return np.array([lookup.get(c, -1) for c in names], np.int64)
    e = t["energy"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = e if task.name == "energy" else t["lep_energy"].to_numpy(np.float64) / e
    return np.where(e > 0, value, np.nan)


def select(
    meta: pd.DataFrame,
    t: pd.DataFrame,
    y: np.ndarray,
    task: Task,
    *,
    query: str | None,
    top_fraction: float | None,
    top_classes: list[int] | None,
) -> np.ndarray:
    """Boolean mask of the events kept: those with a label, the query, the energy cut.

    ``query`` is a :mod:`nudask.selection` over the metadata and truth columns
    (:data:`TRUTH_COLUMNS`; a metadata column of the same name wins); an invalid
    one raises :class:`~nudask.errors.ConfigError`.

    The energy cut keeps, within each class of ``top_classes`` (all events when
    None), the ``top_fraction`` most energetic events (seed 000: the top 50 %
    of nue CC events).
    """
    if task.kind == "vector":
        keep = np.isfinite(y).all(1)
    else:
        keep = np.isfinite(y) & (y >= 0) if task.kind == "regression" else y >= 0
    if query:
        columns = {**{c: t[c] for c in t}, **{c: meta[c] for c in meta}}  # a metadata column wins
        keep &= selection.parse(query).mask(columns, len(meta))
    if top_fraction is not None and top_fraction < 1:
        energy = t["energy"].to_numpy()
        groups = [np.ones(len(y), bool)] if top_classes is None else [y == c for c in top_classes]
        for g in groups:
            g = g & keep
            if g.any():
                cut = np.quantile(energy[g], 1 - top_fraction)
                keep &= ~g | (energy >= cut)
    return keep
