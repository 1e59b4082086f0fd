"""Targets from the truth metadata, per input format; selections.

Each format's truth columns are mapped once onto common ones (:func:`truth`):

=============  ===========================================================
``energy``     true neutrino energy, GeV (MicroBooNE ``nu_energy``, NOvA ``nuenergy``)
``lep_energy`` outgoing lepton energy, GeV (``lep_energy``, ``lepenergy``)
``is_cc``      1 for charged current
``category``   ``numu_cc``, ``nue_cc``, ``nutau_cc``, ``nc``, ``cosmic``, ``other``
``mode``       QE, RES, DIS, ... where the format has it (NOvA), else empty
=============  ===========================================================

A :class:`Task` turns them into labels: binary (``nue_cc``, ``numu_cc``,
``cc``), classes (``flavour`` = category, ``mode``) or a regression value
(``energy``, ``lepton_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError

FORMATS = {  # format -> truth columns it must have
    "microboone": ("is_cc", "nu_pdg", "nu_energy", "lep_energy"),
    "nova": ("is_cc", "current", "flavour", "mode", "nuenergy", "lepenergy"),
}
CATEGORIES = {
    "microboone": ["numu_cc", "nue_cc", "nc"],
    "nova": ["numu_cc", "nue_cc", "nutau_cc", "nc", "cosmic", "other"],
}
MODES = ["QE", "RES", "DIS", "other", "nue-elastic", "NC", "cosmic"]
VERTEX_COLUMNS = ("nu_vtx_wire_pos", "nu_vtx_wire_time")
PLANES = ("u", "v", "y")


@dataclass(frozen=True)
class Task:
    """What a model learns: ``kind`` is binary, classes or regression."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.kind == "classes" else 1


def detect_format(columns, reader: str | None = None) -> str:
    """The input format of a dataset, from its manifest's reader or its columns.

    >>> detect_format(["run", "nu_pdg", "is_cc"])
    'microboone'
    """
    if reader in FORMATS:
        return reader
    if "nu_pdg" in columns:
        return "microboone"
    if "interaction" in columns or "flavour" in columns:
        return "nova"
    raise DataError(
        f"cannot tell the format of a dataset with columns {sorted(columns)}: training knows "
        f"{', '.join(FORMATS)} truth (reader {reader!r})"
    )


def required_columns(fmt: str, crop: str = "none") -> list[str]:
    cols = ["run", "subrun", "event", *FORMATS[fmt]]
    if crop == "vertex":
        if fmt != "microboone":
            raise ConfigError(
                f"input.crop: vertex needs the vertex in pixels, which the {fmt} format does not "
                "carry (its maps are centred on the event already); use crop: centroid or fixed"
            )
        cols += VERTEX_COLUMNS
    return cols


def truth(meta: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """The common truth columns (see the module doc) of metadata in format ``fmt``."""
    out = pd.DataFrame(index=meta.index)
    if fmt == "microboone":
        pdg = np.abs(meta["nu_pdg"].to_numpy())
        cc = meta["is_cc"].to_numpy().astype(bool)
        out["energy"] = meta["nu_energy"].to_numpy(np.float64)
        out["lep_energy"] = meta["lep_energy"].to_numpy(np.float64)
        cat = np.select(
            [cc & (pdg == 14), cc & (pdg == 12), cc & (pdg == 16), ~cc],
            ["numu_cc", "nue_cc", "nutau_cc", "nc"],
            "other",
        )
        out["mode"] = ""
    else:
        cc = meta["is_cc"].to_numpy().astype(bool)
        current = np.asarray(meta["current"].astype(str), dtype=str)
        flav = np.asarray(meta["flavour"].astype(str), dtype=str)
        out["energy"] = meta["nuenergy"].to_numpy(np.float64)
        out["lep_energy"] = meta["lepenergy"].to_numpy(np.float64)
        cat = np.where(cc, np.char.add(flav, "_cc"), np.char.lower(current))
        out["mode"] = meta["mode"].astype(str).to_numpy()
    out["is_cc"] = cc.astype(np.int64)
    out["category"] = cat
    return out


def make_task(name: str, fmt: str) -> Task:
    binary = {"nue_cc": ("rest", "nue CC"), "numu_cc": ("rest", "numu CC"), "cc": ("not CC", "CC")}
    if name in binary:
        return Task(name, "binary", binary[name])
    if name == "flavour":
        return Task(name, "classes", tuple(CATEGORIES[fmt]))
    if name == "mode":
        if fmt != "nova":
            raise ConfigError(
                f"task.target: mode needs interaction modes (QE/RES/DIS), which the "
                f"{fmt} format does not carry; use nue_cc, numu_cc, cc, flavour or energy"
            )
        return Task(name, "classes", tuple(MODES))
    if name in ("energy", "lepton_fraction"):
        return Task(name, "regression")
    raise ConfigError(f"unknown target {name!r}")


def labels(t: pd.DataFrame, task: Task) -> np.ndarray:
    """Label per event: 0/1, a class index (-1: not one of the classes) or a float (NaN: none).

    >>> t = pd.DataFrame({"category": ["nue_cc", "nc"], "is_cc": [1, 0], "energy": [2., 0.],
    ...                   "lep_energy": [1., 0.], "mode": ["", ""]})
    >>> labels(t, Task("nue_cc", "binary")).tolist()
    [1, 0]
    >>> labels(t, Task("lepton_fraction", "regression")).tolist()
    [0.5, nan]
    """
    cat = t["category"].to_numpy()
    if task.name == "nue_cc":
        return (cat == "nue_cc").astype(np.int64)
    if task.name == "numu_cc":
        return (cat == "numu_cc").astype(np.int64)
    if task.name == "cc":
        return t["is_cc"].to_numpy().astype(np.int64)
    if task.kind == "classes":
        column = t["mode"] if task.name == "mode" else t["category"]
        lookup = {c: k for k, c in enumerate(task.classes)}
        return np.array([lookup.get(c, -1) for c in column.to_numpy()], np.int64)
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

    The energy cut keeps, within each class of ``top_classes`` (all events when
    None), the ``top_fraction`` most energetic events (seed 000: the top 50 %
    of nue CC events).
    """
    keep = np.isfinite(y) & (y >= 0) if task.kind == "regression" else y >= 0
    if query:
        try:
            hit = meta.assign(**{c: t[c] for c in t if c not in meta}).eval(query)
        except Exception as err:
            raise ConfigError(
                f"task.select: cannot evaluate {query!r} on the metadata "
                f"(columns {sorted(meta.columns)}): {err}"
            ) from None
        keep &= np.asarray(hit, bool)
    if top_fraction is not None and top_fraction < 1:
        energy = t["energy"].to_numpy()
        groups = [np.ones(len(y), bool)] if top_classes is None else [y == c for c in top_classes]
        for g in groups:
            g = g & keep
            if g.any():
                cut = np.quantile(energy[g], 1 - top_fraction)
                keep &= ~g | (energy >= cut)
    return keep


def vertex_pixels(meta: pd.DataFrame, view: str, factor: int) -> np.ndarray:
    """(row, col) of the true vertex per event in a MicroBooNE view: (wire, time bin)."""
    plane = PLANES.index(view)
    wire = np.stack(meta["nu_vtx_wire_pos"].to_numpy())[:, plane]
    tbin = meta["nu_vtx_wire_time"].to_numpy(np.float64) / factor
    return np.stack([wire, tbin], axis=1).astype(np.float64)
