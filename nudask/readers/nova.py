"""NOvA-like pixel maps, the UCL PHAS0056 course files (formats.md section 2).

Each ``/cvnmap`` row is ``(2, 100, 80)``: view ``xz`` then view ``yz``, 100
planes x 80 cells each (``reshape(N, 100, 80, 2)``, seen in student code,
mixes the two views). The ``/neutrino/*`` columns become metadata under
their own names, plus labels derived from the codes:

=============  ==============================================================
``is_cc``      1 for CC (interaction 0-11), else 0
``current``    ``CC``, ``NC`` (12, 13), ``cosmic`` (14), ``other`` (15)
``flavour``    ``numu`` (0-3), ``nue`` (4-7), ``nutau`` (8-11), else ``unknown``
``mode``       ``QE`` {0,4,8}, ``RES`` {1,5,9}, ``DIS`` {2,6,10}, ``other`` CC
               {3,7,11}, ``nue-elastic`` (12), ``NC`` (13), ``cosmic``, ``other``
``n_tracks``   from ``finalstate`` (base + 4 tracks + showers, 3 = three or
``n_showers``  more); -1 for cosmic (48) and other (49)
=============  ==============================================================

Event ids: run and subrun as in the file; ``event`` packs
``(cycle * 1_000_000 + evt) * 1000 + subevt`` so that slices of one
readout event stay distinct.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..events import Chunk, Event, EventId, ViewSpec
from ..roles import Label, Quantity, Roles, Title
from ..sparse import to_coo
from .base import FieldSpec, Reader
from .hdf5_files import (
    column_values,
    field_spec,
    h5_holds,
    open_h5,
    require_columns,
    require_group,
)

VIEWS = ("xz", "yz")
SHAPE = (2, 100, 80)
ID_FIELDS = ("run", "subrun")  # carried by EventId, not repeated as metadata
REQUIRED = ("run", "subrun", "cycle", "evt", "subevt", "interaction", "finalstate")
_MODES = np.array(["QE", "RES", "DIS", "other"] * 3 + ["nue-elastic", "NC", "cosmic", "other"])
_CURRENT = np.array(["CC"] * 12 + ["NC", "NC", "cosmic", "other"])
_FLAVOUR = np.array(["numu"] * 4 + ["nue"] * 4 + ["nutau"] * 4 + ["unknown"] * 4)
CATEGORIES = ("numu_cc", "nue_cc", "nutau_cc", "nc", "cosmic", "other")
MODES = ("QE", "RES", "DIS", "other", "nue-elastic", "NC", "cosmic")
DERIVED: dict[str, FieldSpec] = {
    "is_cc": ("<i4", ()),
    "current": ("str", ()),
    "flavour": ("str", ()),
    "mode": ("str", ()),
    "n_tracks": ("<i4", ()),
    "n_showers": ("<i4", ()),
}


def derived_labels(interaction: np.ndarray, finalstate: np.ndarray) -> dict[str, np.ndarray]:
    """Labels derived from the ``interaction`` and ``finalstate`` codes.

    >>> d = derived_labels(np.array([0, 6, 13]), np.array([4, 17, 48]))
    >>> d["mode"].tolist(), d["n_tracks"].tolist(), d["n_showers"].tolist()
    (['QE', 'DIS', 'NC'], [1, 0, -1], [0, 1, -1])
    """
    code = np.clip(interaction.astype(np.int64), 0, 15)
    fs = finalstate.astype(np.int64)
    neutrino = fs < 48
    return {
        "is_cc": (code < 12).astype(np.int32),
        "current": _CURRENT[code],
        "flavour": _FLAVOUR[code],
        "mode": _MODES[code],
        "n_tracks": np.where(neutrino, (fs % 16) // 4, -1).astype(np.int32),
        "n_showers": np.where(neutrino, fs % 4, -1).astype(np.int32),
    }


class NOvAReader(Reader):
    name = "nova"
    suffixes = (".h5", ".hdf5")
    description = "NOvA-like pixel maps (PHAS0056 course files), views xz and yz of 100 x 80"

    simulate_options: ClassVar[dict[str, str]] = {}

    @classmethod
    def simulate(cls, out: str, *, files: int, events: int, seed: int) -> list[str]:
        from ..simulate import simulate_nova

        return [
            str(
                simulate_nova(os.path.join(out, f"neutrino{k + 1}.h5"), n_events=events, seed=seed * 1000 + k)
            )
            for k in range(files)
        ]

    @classmethod
    def guess_can_open(cls, path) -> bool:
        return super().guess_can_open(path) and h5_holds(path, ["cvnmap", "neutrino"], unreadable=False)

    def roles(self) -> Roles:
        return Roles(
            energy=Quantity("nuenergy", "GeV"),
            particle_energy=Quantity("lepenergy", "GeV"),
            labels={
                "flavour": Label(CATEGORIES, cc="is_cc", flavour="flavour", current="current"),
                "cc": Label(("not CC", "CC"), column="is_cc"),  # cosmics are not CC, nor NC
                "current": Label(("CC", "NC", "cosmic", "other"), column="current"),
                "mode": Label(MODES, column="mode"),
            },
            title=(
                Title("interaction", "interaction {:d}"),
                Title("current"),
                Title("flavour"),
                Title("mode"),
                Title("nuenergy", "E_nu {:.3f} GeV"),
                Title("lepenergy", "E_lep {:.3f} GeV"),
            ),
        )

    def views(self, path: str) -> dict[str, ViewSpec]:
        with open_h5(path) as f:
            dtype = self._cvnmap(f, path).dtype.newbyteorder("=").str
        return {v: ViewSpec(v, ("plane", "cell"), SHAPE[1:], dtype) for v in VIEWS}

    def metadata_fields(self, path: str) -> dict[str, FieldSpec]:
        with open_h5(path) as f:
            nu = self._neutrino(f, path)
            own = {k: field_spec(d) for k, d in nu.items() if k not in ID_FIELDS}
        return {**own, **DERIVED}

    def event_weights(self, path: str) -> np.ndarray:
        with open_h5(path) as f:
            n = self._cvnmap(f, path).shape[0]
            require_columns(self._neutrino(f, path), path, list(self._neutrino(f, path)), n)
        if n == 0:
            raise InputError(path, "the file holds no events", "is it an empty or partial copy?")
        return np.ones(n)

    def read(self, chunk: Chunk) -> Iterator[Event]:
        path, start, stop = chunk.path, chunk.start, chunk.stop
        with open_h5(path) as f:
            try:
                maps = self._cvnmap(f, path)[start:stop].reshape(-1, *SHAPE)
                nu = {k: column_values(d, start, stop) for k, d in self._neutrino(f, path).items()}
            except OSError as err:
                raise InputError(
                    path, f"cannot read events {start}-{stop} ({err})", "the file may be truncated or corrupt"
                ) from None
        nu.update(derived_labels(nu["interaction"], nu["finalstate"]))
        packed = (nu["cycle"].astype(np.int64) * 1_000_000 + nu["evt"]) * 1000 + nu["subevt"]
        for k in range(stop - start):
            eid = EventId(int(nu["run"][k]), int(nu["subrun"][k]), int(packed[k]))
            meta = {name: col[k] for name, col in nu.items() if name not in ID_FIELDS}
            images = {v: to_coo(maps[k, i]) for i, v in enumerate(VIEWS)}
            yield Event(eid, start + k, meta, images)

    def _cvnmap(self, f, path: str):
        d = f.get("cvnmap")
        if d is None:
            raise InputError(path, "no 'cvnmap' dataset", "not a NOvA-like pixel-map file?")
        if d.ndim != 2 or d.shape[1] != int(np.prod(SHAPE)):
            raise InputError(path, f"cvnmap has shape {d.shape}; expected (N, 16000) = 2 x 100 x 80")
        return d

    def _neutrino(self, f, path: str):
        nu = require_group(f, path, "neutrino", "not a NOvA-like pixel-map file?")
        require_columns(nu, path, REQUIRED)
        return nu
