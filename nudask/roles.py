"""What a format's metadata columns mean: the roles a reader declares.

Host code (training, describe, event displays, reports) reads columns only
through these roles, never by a format's column names, so a new format
needs no change outside its reader. The roles are recorded in the manifest
as JSON (:meth:`Roles.to_json`).

=================  ==========================================================
``identity``       columns that identify an event (default run, subrun, event)
``energy``         true energy (neutrino, or the particle's), with its unit
``particle_energy``  outgoing lepton or particle energy, same unit
``labels``         named class labels: a column of class codes (0, 1, ...) or
                   names, with its vocabulary; or the neutrino *category*
                   (``nue_cc``, ``numu_cc``, ``nc``, ...) derived from a CC flag
                   and the neutrino PDG code or a flavour column
``centres``        per view, the vertex or centre in pixel coordinates
``title``          columns an event display titles with, and their format
``vectors``        named vector quantities (a true direction, a momentum): the
                   columns of their components, e.g. ``direction`` from
                   ``true_dir_x/y/z``
``units``          per view, the unit of its pixel values (``e-``, ``ADU``, ...;
                   ``*`` for every view), for colour bars
=================  ==========================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas only where a metadata frame is read: readers import roles on workers
    import pandas as pd

    from .records import Manifest

FLAVOURS = {12: "nue", 14: "numu", 16: "nutau"}  # |PDG| -> flavour (nu and nubar together)


@dataclass(frozen=True)
class Quantity:
    """A numeric column and its unit."""

    column: str
    unit: str = "GeV"


@dataclass(frozen=True)
class Label:
    """A class label.

    With ``column``: the column holds class codes (integers indexing
    ``classes``) or class names; ``classes`` empty means any value is a class
    (counted by value, e.g. PDG codes). With ``cc`` (and ``pdg`` or
    ``flavour``): the neutrino category, ``{flavour}_cc`` for charged current,
    else the lower-cased ``current`` column's value, or ``nc``.
    """

    classes: tuple[str, ...] = ()
    column: str | None = None
    cc: str | None = None
    pdg: str | None = None
    flavour: str | None = None
    current: str | None = None

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.column, self.cc, self.pdg, self.flavour, self.current) if c]

    def names(self, meta: pd.DataFrame) -> np.ndarray:
        """The class name of each event (strings)."""
        if self.column is not None:
            values = meta[self.column].to_numpy()
            if self.classes and np.issubdtype(values.dtype, np.integer):
                lookup = np.array([*self.classes, ""], dtype=object)
                code = values.astype(np.int64)
                return lookup[np.where((code >= 0) & (code < len(self.classes)), code, len(self.classes))]
            import pandas as pd

            return np.asarray(pd.Series(values).astype(str), dtype=object)
        if self.cc is None:
            raise DataError("a label role needs a column, or a cc column for the neutrino category")
        cc = meta[self.cc].to_numpy().astype(bool)
        if self.flavour is not None:
            flav = np.asarray(meta[self.flavour].astype(str), dtype=object)
        elif self.pdg is not None:
            pdg = np.abs(meta[self.pdg].to_numpy().astype(np.int64))
            flav = np.array([FLAVOURS.get(int(p), "other") for p in pdg], dtype=object)
        else:
            raise DataError("the neutrino category needs a pdg or a flavour column")
        other = np.full(len(meta), "nc", dtype=object)
        if self.current is not None:
            other = np.asarray(meta[self.current].astype(str).str.lower(), dtype=object)
        return np.where(cc, flav + "_cc", other)

    def codes(self, meta: pd.DataFrame) -> np.ndarray:
        """The class index of each event in ``classes``; -1 for a value outside them."""
        lookup = {c: k for k, c in enumerate(self.classes)}
        return np.array([lookup.get(n, -1) for n in self.names(meta)], np.int64)


@dataclass(frozen=True)
class Coord:
    """One pixel coordinate from a column: ``column[element] * scale`` (element for vectors)."""

    column: str
    element: int | None = None
    scale: float = 1.0

    def values(self, meta: pd.DataFrame) -> np.ndarray:
        col = meta[self.column].to_numpy()
        if self.element is not None:
            col = np.stack(col)[:, self.element]
        return col.astype(np.float64) * self.scale


@dataclass(frozen=True)
class Centre:
    """A view's vertex or centre: (row, column) in the pixels of the stored image."""

    row: Coord
    col: Coord

    def pixels(self, meta: pd.DataFrame) -> np.ndarray:
        return np.stack([self.row.values(meta), self.col.values(meta)], axis=1)


@dataclass(frozen=True)
class Vector:
    """A vector quantity from one column per component (e.g. a unit direction x, y, z)."""

    columns: tuple[str, ...]
    unit: str = ""

    def values(self, meta: pd.DataFrame) -> np.ndarray:
        """``(n, len(columns))`` float64; NaN where a component is null."""
        import pandas as pd

        return np.stack(
            [pd.to_numeric(meta[c], errors="coerce").to_numpy(np.float64) for c in self.columns], 1
        )


@dataclass(frozen=True)
class Title:
    """A column shown in event-display titles, with a ``str.format`` template."""

    column: str
    template: str = "{}"


@dataclass(frozen=True)
class Roles:
    """Every role of a format's metadata (see the module doc)."""

    identity: tuple[str, ...] = ("run", "subrun", "event")
    energy: Quantity | None = None
    particle_energy: Quantity | None = None
    labels: dict[str, Label] = field(default_factory=dict)
    centres: dict[str, Centre] = field(default_factory=dict)
    title: tuple[Title, ...] = ()
    vectors: dict[str, Vector] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def label(self, name: str, needed_for: str) -> Label:
        """The label ``name``, or a DataError saying what needs it and what there is."""
        if name not in self.labels:
            have = ", ".join(self.labels) or "none"
            raise ConfigError(
                f"{needed_for} needs the label role '{name}', which this dataset's reader does "
                f"not declare (its labels: {have})"
            )
        return self.labels[name]

    def need(self, role: str, needed_for: str):
        value = getattr(self, role)
        if not value:
            raise DataError(
                f"{needed_for} needs the role '{role}', which this dataset's reader does not declare"
            )
        return value

    def to_json(self) -> dict[str, Any]:
        def clean(d):
            return {k: v for k, v in d.items() if v not in (None, (), [])}

        return {
            "identity": list(self.identity),
            "energy": asdict(self.energy) if self.energy else None,
            "particle_energy": asdict(self.particle_energy) if self.particle_energy else None,
            "labels": {k: clean(asdict(v)) for k, v in self.labels.items()},
            "centres": {k: asdict(v) for k, v in self.centres.items()},
            "title": [asdict(t) for t in self.title],
            "vectors": {k: {"columns": list(v.columns), "unit": v.unit} for k, v in self.vectors.items()},
            "units": dict(self.units),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Roles:
        def label(v):
            return Label(**{**v, "classes": tuple(v.get("classes", ()))})

        return cls(
            identity=tuple(d.get("identity", ("run", "subrun", "event"))),
            energy=Quantity(**d["energy"]) if d.get("energy") else None,
            particle_energy=Quantity(**d["particle_energy"]) if d.get("particle_energy") else None,
            labels={k: label(v) for k, v in d.get("labels", {}).items()},
            centres={
                k: Centre(Coord(**v["row"]), Coord(**v["col"])) for k, v in d.get("centres", {}).items()
            },
            title=tuple(Title(**t) for t in d.get("title", [])),
            vectors={
                k: Vector(tuple(v["columns"]), v.get("unit", "")) for k, v in d.get("vectors", {}).items()
            },
            units=dict(d.get("units", {})),
        )

    def columns(self) -> list[str]:
        """Every metadata column some role reads."""
        cols = list(self.identity)
        for q in (self.energy, self.particle_energy):
            if q:
                cols.append(q.column)
        for lab in self.labels.values():
            cols += lab.columns
        for c in self.centres.values():
            cols += [c.row.column, c.col.column]
        cols += [t.column for t in self.title]
        for vec in self.vectors.values():
            cols += list(vec.columns)
        return list(dict.fromkeys(cols))


def roles_of(manifest: Manifest) -> Roles:
    """The roles recorded in a manifest; for datasets written before roles were, the reader's."""
    if manifest.roles:
        return Roles.from_json(manifest.roles)
    from .errors import NudaskError
    from .readers import get_reader

    try:
        return get_reader(manifest.reader, **manifest.reader_options).roles()
    except (NudaskError, ValueError, TypeError, ImportError):  # reader gone or changed: no roles,
        return Roles()  # and the tasks that need one say which
