"""``points``: a made-up format of 3-D points with per-point labels (a plugin for the tests).

One event per ``*.pts.npz`` file (``np.savez``): ``xyz`` (N, 3) voxel indices in a grid of
``extent`` (3,), ``energy`` (N,) float32 MeV, ``label`` (N,) int32 per point (0 track,
1 shower: 0 is a real label), ``event`` and ``kind`` (0 muon, 1 electron) scalars. The grid
extent varies from file to file. Views: ``points`` (3-D COO, channels energy and label) and
``xy`` (its projection, energy summed), both sized per event; ``frame``, an 8 x 8 count map
stored dense (every pixel, int32) because it is mostly non-zero.
"""

from __future__ import annotations

import os
import zipfile
from typing import ClassVar

import numpy as np

from nudask.errors import InputError
from nudask.events import Chunk, Coo, Event, EventId, ViewSpec
from nudask.readers.base import Reader
from nudask.roles import Label, Quantity, Roles, Title
from nudask.schema import choose_kind
from nudask.sparse import segment_sum_coo

KINDS = ("muon", "electron")
FRAME = ViewSpec("frame", ("row", "col"), (8, 8), "int32")
FRAME = ViewSpec("frame", ("row", "col"), (8, 8), "int32", kind=choose_kind(FRAME, 1.0))


class PointsReader(Reader):
    name = "points"
    suffixes = (".pts.npz",)
    description = "made-up 3-D points with per-point labels, one event per file"
    simulate_options: ClassVar[dict[str, str]] = {}

    @classmethod
    def simulate(cls, out: str, *, files: int, events: int, seed: int) -> list[str]:
        paths = []
        for k in range(files):
            paths.append(write_event(os.path.join(out, f"event_{k:05d}.pts.npz"), seed * 100_000 + k))
        return paths

    def roles(self) -> Roles:
        return Roles(
            energy=Quantity("total_energy", "MeV"),
            labels={"kind": Label(KINDS, column="kind")},
            title=(Title("kind", "kind {:d}"), Title("total_energy", "E {:.1f} MeV")),
        )

    def _load(self, path: str) -> dict[str, np.ndarray]:
        if not os.path.exists(path):
            raise InputError(path, "no such file", "check the path")
        if os.path.getsize(path) == 0:
            raise InputError(path, "the file is empty (0 bytes)")
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in ("xyz", "energy", "label", "event", "kind", "extent")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            raise InputError(path, f"not a points file ({err})") from None
        return data

    def views(self, path: str) -> dict[str, ViewSpec]:
        extent = tuple(int(n) for n in self._load(path)["extent"])
        return {
            "points": ViewSpec(
                "points", ("x", "y", "z"), extent, channels=(("energy", "float32"), ("label", "int32"))
            ),
            "xy": ViewSpec("xy", ("x", "y"), extent[:2]),
            "frame": FRAME,
        }

    def metadata_fields(self, path: str):
        return {"kind": ("<i4", ()), "total_energy": ("<f4", ()), "n_points": ("<i8", ())}

    def event_weights(self, path: str) -> np.ndarray:
        self._load(path)
        return np.ones(1)

    def read(self, chunk: Chunk):
        d = self._load(chunk.path)
        xyz, energy, label = d["xyz"], d["energy"].astype(np.float32), d["label"].astype(np.int32)
        extent = tuple(int(n) for n in d["extent"])
        order = np.lexsort((xyz[:, 2], xyz[:, 1], xyz[:, 0]))  # C order
        index = tuple(xyz[order, k].astype(np.uint16) for k in range(3))
        points = Coo.of(extent, index, energy=energy[order], label=label[order])
        keys = xyz[:, 0].astype(np.int64) * extent[1] + xyz[:, 1]
        xy = segment_sum_coo(keys, energy, extent[:2])
        meta = {
            "kind": np.int32(d["kind"]),
            "total_energy": np.float32(energy.sum()),
            "n_points": len(energy),
        }
        frame = np.ones((8, 8), np.int32)  # a pedestal of 1, plus the points per 4 x 4 x-y cell
        np.add.at(frame, (np.minimum(xyz[:, 0] // 4, 7), np.minimum(xyz[:, 1] // 4, 7)), 1)
        images = {"points": points, "xy": xy, "frame": frame}
        yield Event(EventId(1, 0, int(d["event"])), 0, meta, images)


def write_event(path: str, seed: int) -> str:
    """One event: a straight track (muon) or a fan of points (electron), distinct voxels."""
    rng = np.random.default_rng(seed)
    extent = np.array([rng.integers(24, 40), rng.integers(24, 40), 16])
    kind = int(rng.integers(0, 2))
    n = int(rng.integers(5, 40))
    start = rng.integers(0, 8, 3)
    if kind == 0:
        steps = np.stack([np.arange(n), np.arange(n) // 2, np.zeros(n, int)], axis=1)
    else:
        steps = rng.integers(0, 12, (n, 3))
    xyz = np.unique(np.minimum(start + steps, extent - 1), axis=0)
    energy = rng.uniform(0.5, 5.0, len(xyz)).astype(np.float32)
    label = np.where(rng.random(len(xyz)) < 0.5, 0, 1).astype(np.int32)
    np.savez(path, xyz=xyz.astype(np.int32), energy=energy, label=label, event=np.int64(seed),
             kind=np.int32(kind), extent=extent.astype(np.int32))  # fmt: skip
    return path
