"""DUNE supernova cluster NPZ batches: the metadata generations and their named columns.

Files written by ``np.savez`` (online-pointing-utils) with two arrays: ``images``
float32 ``(N, 128, W)`` (rows = time ticks, columns = channels, raw ADC, W 16 or 32)
and ``metadata`` float32 ``(N, C)``. The column count ``C`` says the generation:

====  ===========================================================================
11    is_marley, is_main_track, true_pos x y z (cm), true_dir x y z, true_nu_energy
      (MeV), true_particle_energy (MeV), plane_id (0 U, 1 V, 2 X)
12    the 11, then is_es_interaction (1 ES, 0 CC)
13    a reordered layout: event, is_marley, is_main_track, is_es_interaction,
      true_pos x y z, true_mom x y z (GeV/c, the particle's), cluster_energy (MeV,
      from the ADC sum), true_particle_energy, plane_id
14    the 13, then match_id (the cluster's match across planes; -1 none)
18    the 14, then true_nu_energy and the neutrino momentum x y z (GeV/c)
====  ===========================================================================

Every generation maps onto one set of named columns (:data:`FIELDS`); a
column a generation lacks is null. The direction of the 13+ generations is
derived from the particle momentum (normalised), so that every generation has
``true_dir_*``.
"""

from __future__ import annotations

import numpy as np

from .base import FieldSpec

PLANES = ("U", "V", "X")
WIDTHS = (16, 32)
TICKS = 128
THRESHOLDS = {"U": 70.0, "V": 70.0, "X": 60.0}  # ADC plateau of a TP pentagon, per plane
ADC_PER_MEV = {"U": 900.0, "V": 900.0, "X": 3600.0}  # induction / collection conversion

_G11 = (
    "is_marley", "is_main_track", "true_pos_x", "true_pos_y", "true_pos_z",
    "true_dir_x", "true_dir_y", "true_dir_z", "true_nu_energy", "true_particle_energy", "plane_id",
)  # fmt: skip
_G13 = (
    "cluster_event", "is_marley", "is_main_track", "is_es_interaction",
    "true_pos_x", "true_pos_y", "true_pos_z", "true_mom_x", "true_mom_y", "true_mom_z",
    "cluster_energy", "true_particle_energy", "plane_id",
)  # fmt: skip
#: column count -> the names of the file's columns, in order
GENERATIONS: dict[int, tuple[str, ...]] = {
    11: _G11,
    12: (*_G11, "is_es_interaction"),
    13: _G13,
    14: (*_G13, "match_id"),
    18: (*_G13, "match_id", "true_nu_energy", "nu_mom_x", "nu_mom_y", "nu_mom_z"),
}
I4, I8, F4 = ("<i4", ()), ("<i8", ()), ("<f4", ())
#: every named column of a dataset, whatever the generation (null where it lacks one)
FIELDS: dict[str, FieldSpec] = {
    "generation": I4,  # the file's column count
    "plane": ("str", ()),
    "plane_id": I4,
    "width": I4,  # channels of the image (16 or 32)
    "is_marley": I4,
    "is_main_track": I4,
    "is_es_interaction": I4,
    "interaction": ("str", ()),  # ES, CC or unknown (a generation without is_es_interaction)
    "cluster_event": I8,
    "match_id": I8,
    "true_pos_x": F4,
    "true_pos_y": F4,
    "true_pos_z": F4,
    "true_dir_x": F4,
    "true_dir_y": F4,
    "true_dir_z": F4,
    "true_mom_x": F4,
    "true_mom_y": F4,
    "true_mom_z": F4,
    "true_nu_energy": F4,
    "true_particle_energy": F4,
    "cluster_energy": F4,
    "nu_mom_x": F4,
    "nu_mom_y": F4,
    "nu_mom_z": F4,
}
INTEGER = {k for k, (t, _) in FIELDS.items() if t.startswith("<i")}


def named_columns(metadata: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """The :data:`FIELDS` columns of a ``(N, C)`` metadata block: arrays, object where nullable.

    >>> m = np.zeros((2, 11), np.float32); m[:, 10] = 2; m[:, 5] = 1
    >>> cols = named_columns(m, 16)
    >>> cols["plane"].tolist(), cols["is_es_interaction"].tolist(), cols["true_dir_x"].tolist()
    (['X', 'X'], [None, None], [1.0, 1.0])
    """
    n, c = metadata.shape
    names = GENERATIONS[c]
    have = {name: metadata[:, k] for k, name in enumerate(names)}
    if "true_mom_x" in have:  # the direction from the momentum
        mom = np.stack([have["true_mom_x"], have["true_mom_y"], have["true_mom_z"]], 1).astype(np.float64)
        norm = np.linalg.norm(mom, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(norm > 0, mom / norm, 0.0).astype(np.float32)
        have.update(true_dir_x=d[:, 0], true_dir_y=d[:, 1], true_dir_z=d[:, 2])
    plane_id = have["plane_id"].astype(np.int32)
    out: dict[str, np.ndarray] = {
        "generation": np.full(n, c, np.int32),
        "plane": np.array(PLANES, dtype=object)[np.clip(plane_id, 0, 2)],
        "width": np.full(n, width, np.int32),
    }
    es = have.get("is_es_interaction")
    out["interaction"] = (
        np.full(n, "unknown", dtype=object) if es is None else np.where(es > 0.5, "ES", "CC").astype(object)
    )
    for name, (kind, _) in FIELDS.items():
        if name in out:
            continue
        col = have.get(name)
        if col is None:
            out[name] = np.full(n, None, dtype=object)
        elif name in INTEGER:
            out[name] = np.rint(col).astype(np.int32 if kind == "<i4" else np.int64)
        else:
            out[name] = col.astype(np.float32)
    return out


def metadata_block(truth: dict[str, np.ndarray], generation: int) -> np.ndarray:
    """The ``(N, generation)`` float32 metadata a file of that generation holds (the simulator's).

    ``truth`` has every name of :data:`GENERATIONS`; the inverse of :func:`named_columns`.
    """
    return np.stack([np.asarray(truth[n], np.float32) for n in GENERATIONS[generation]], 1)
