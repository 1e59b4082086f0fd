"""MicroBooNE OpenSamples HDF5 (formats.md section 1).

Events are sliced through each table's ``event_id.seq_cnt`` index; wire rows
are placed by ``local_wire`` (row order is the producer's, wires may be
missing) and rendered per plane (views ``u``, ``v``, ``y``) without ever
building the dense 211 MB wire table of an event.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

import deflate
import numpy as np

from ..errors import ConfigError, InputError
from ..events import Chunk, Event, EventId, ViewSpec
from ..roles import Centre, Coord, Label, Quantity, Roles, Title
from .base import FieldSpec, Reader
from .hdf5_files import (
    column_values,
    field_spec,
    h5_holds,
    open_h5,
    require_columns,
    require_group,
)
from .row_blocks import RowBlocks
from .seq_index import SeqIndex
from .wire_geometry import PLANE_NAMES, get_geometry
from .wire_render import WireRender, render_wire_samples

KERNEL_MAX_FACTOR = 129  # numpy's pairwise sum recurses above 128 samples: wider blocks use the reference


def wire_kernel_supported(dtype, settings: WireRender) -> bool:
    """True if the compiled kernel renders these samples (float32, blocks of at most 129 ticks)."""
    return np.dtype(dtype) == np.float32 and settings.factor <= KERNEL_MAX_FACTOR


WIRE_COLUMNS = ("event_id", "local_plane", "local_wire", "adc")
NOWIRE_HINT = "rendering needs the WithWire samples (a NoWire file?)"


class MicroBooNEReader(Reader):
    name = "microboone"
    suffixes = (".h5", ".hdf5")
    description = "MicroBooNE OpenSamples HDF5 (WithWire files), rendered per wire plane u, v, y"

    simulate_options: ClassVar[dict[str, str]] = {
        "sample": "bnb (inclusive, default) or nue (nue CC enriched)",
        "geometry": "microboone (full, default) or small (fast tests)",
        "with_wire": "true (WithWire files, default) or false (NoWire)",
        "cosmics": "real (default: ~24 cosmic muons per readout, the public files' density), sparse "
        "(1-5, the earlier releases' files) or a mean number of muons per readout",
    }
    RUNS: ClassVar[dict[str, int]] = {"bnb": 5000, "nue": 7000}  # distinct event ids across samples
    # zstd 1 writes the byte-split wire images 3-4x faster than zstd 9, at the same size lossless
    # and 1-8 % larger in 8-bit and float16 (BENCHMARKS.md, "Parquet write: zstd level")
    storage_hints: ClassVar[dict[str, int]] = {"compression_level": 1}

    @classmethod
    def simulate(
        cls, out: str, *, files: int, events: int, seed: int, sample: str = "bnb",
        geometry: str = "microboone", with_wire: bool = True, cosmics: str | int = "real",
    ) -> list[str]:  # fmt: skip
        from ..simulate import simulate_microboone

        if sample not in cls.RUNS:
            raise ConfigError(f"simulate: sample must be one of {sorted(cls.RUNS)}, got {sample!r}")
        kind = "WithWire" if with_wire else "NoWire"
        return [
            str(
                simulate_microboone(
                    os.path.join(out, f"{sample}_{kind}_{k:02d}.h5"),
                    n_events=events,
                    seed=seed * 1000 + k,
                    sample=sample,
                    geometry=geometry,
                    with_wire=with_wire,
                    cosmics=cosmics,
                    first_event=1 + k * events,
                    run=cls.RUNS[sample],
                    subrun=seed * 100 + k,
                )
            )
            for k in range(files)
        ]

    OPTIONS: ClassVar[dict[str, str]] = {
        "geometry": "detector geometry: microboone (2400/2400/3456 wires x 6400 ticks) or small (tests)",
        "factor": "ticks summed per time bin (the notebooks' 6)",
        "cutoff": "values below it become 0 after summing (null: 10 x factor / 6)",
        "saturation": "values are clipped at it (null: 100 x factor / 6); the 8-bit scale's top",
        "fast_inflate": "inflate gzip chunks with zlib-ng or libdeflate, not HDF5 (null: if it can)",
        "kernel": "numba (compiled, one pass per inflated block of rows; default) or numpy (the reference)",
    }
    KERNELS = ("numba", "numpy")

    def __init__(
        self,
        *,
        geometry: str = "microboone",
        factor: int = 6,
        cutoff: float | None = None,
        saturation: float | None = None,
        fast_inflate: bool | None = None,
        kernel: str = "numba",
    ):
        if kernel not in self.KERNELS:
            raise ConfigError(f"microboone: kernel must be one of {list(self.KERNELS)}, got {kernel!r}")
        self.geometry = get_geometry(geometry)
        self.render = WireRender(factor, cutoff, saturation)
        self.fast_inflate = fast_inflate  # None: zlib-ng / libdeflate when the layout allows
        self.kernel = kernel

    @classmethod
    def guess_can_open(cls, path) -> bool:
        # an unreadable .h5 is claimed, so that read() explains what is wrong with it
        return super().guess_can_open(path) and h5_holds(path, ["event_table"], ["neutrino"], unreadable=True)

    def options(self) -> dict[str, Any]:
        return {"geometry": self.geometry.name, **self.render.to_dict()}

    def roles(self) -> Roles:
        return Roles(
            energy=Quantity("nu_energy", "GeV"),
            particle_energy=Quantity("lep_energy", "GeV"),
            labels={
                "flavour": Label(("numu_cc", "nue_cc", "nc"), cc="is_cc", pdg="nu_pdg"),
                "cc": Label(("NC", "CC"), column="is_cc"),
                "nu_pdg": Label(column="nu_pdg"),
            },
            centres={  # the vertex: wire number on each plane, drift time in ticks
                view: Centre(
                    Coord("nu_vtx_wire_pos", n), Coord("nu_vtx_wire_time", scale=1 / self.render.factor)
                )
                for n, view in enumerate(PLANE_NAMES)
            },
            title=(
                Title("nu_pdg", "pdg {:d}"),
                Title("is_cc", "is_cc {:d}"),
                Title("nu_energy", "E_nu {:.3f} GeV"),
                Title("lep_energy", "E_lep {:.3f} GeV"),
            ),
        )

    def views(self, path: str) -> dict[str, ViewSpec]:
        bins = self.render.n_bins(self.geometry.ticks)
        return {
            v: ViewSpec(v, ("wire", "time"), (n, bins), "float32", self.render.ceiling)
            for v, n in zip(PLANE_NAMES, self.geometry.wires)
        }

    def metadata_fields(self, path: str) -> dict[str, FieldSpec]:
        with open_h5(path) as f:
            table = self._event_table(f, path)
            return {k: field_spec(d) for k, d in table.items() if not k.startswith("event_id")}

    def event_weights(self, path: str) -> np.ndarray:
        with open_h5(path) as f:
            n = require_columns(self._event_table(f, path), path, ["event_id"])
            if n == 0:
                raise InputError(path, "the file holds no events", "is it an empty or partial copy?")
            _, index = self._wire_table(f, path)
            return index.counts(n)

    def read(self, chunk: Chunk) -> Iterator[Event]:
        path = chunk.path
        with open_h5(path) as f:
            table = self._event_table(f, path)
            wires, index = self._wire_table(f, path)
            try:
                yield from self._read(chunk, table, wires, index)
            except (OSError, deflate.DeflateError) as err:
                raise InputError(
                    path,
                    f"cannot read events {chunk.start}-{chunk.stop} ({err})",
                    "the file may be truncated or corrupt; copy it again",
                ) from None

    # -- internals -----------------------------------------------------------
    def _read(self, chunk: Chunk, table, wires, index: SeqIndex) -> Iterator[Event]:
        path, start, stop = chunk.path, chunk.start, chunk.stop
        ids = table["event_id"][start:stop]
        meta = {k: column_values(d, start, stop) for k, d in table.items() if not k.startswith("event_id")}
        r0, r1 = index.rows(start, stop)
        plane = wires["local_plane"][r0:r1, 0]
        wire = self._wire_numbers(path, wires["local_wire"][r0:r1, 0], plane)
        adc = RowBlocks(wires["adc"], fast=self.fast_inflate)
        spans = index.event_rows(start, stop)
        render = self._event_render(path, adc, r0, plane, wire)
        for k in range(stop - start):
            a, b = spans.get(start + k, (r0, r0))
            images = dict(zip(PLANE_NAMES, render(start + k, a, b)))
            run, subrun, event = (int(x) for x in ids[k])
            yield Event(
                EventId(run, subrun, event),
                start + k,
                {name: col[k] for name, col in meta.items()},
                images,
            )
        adc.finish()  # the last chunk streamed, inflated to its end: its checksum checked

    def _event_render(self, path: str, adc: RowBlocks, r0: int, plane: np.ndarray, wire: np.ndarray):
        """``render(event, a, b)``: the planes' COO of the event on rows ``[a, b)`` of the file.

        ``plane`` and ``wire`` are those of the task's rows, from row ``r0`` on.
        """
        ticks = self.geometry.ticks
        if self.kernel == "numba" and wire_kernel_supported(adc.dset.dtype, self.render):
            from .wire_kernel import DuplicateWireError, EventRender  # numba loads only when used

            kernel = EventRender(self.geometry.wires, ticks, self.render)
            plane = plane.astype(np.int64)

            def compiled(event: int, a: int, b: int) -> list:
                kernel.start(b - a)
                for row0, block in adc.blocks(a, b):
                    kernel.scan(block, row0 - a)
                try:
                    return kernel.images(plane[a - r0 : b - r0], wire[a - r0 : b - r0])
                except DuplicateWireError as err:
                    raise self._duplicate(path, event, err.plane, err.wire) from None

            return compiled

        def reference(event: int, a: int, b: int) -> list:
            rows, tick, value = _nonzero_samples(adc, a, b, ticks)
            rows -= r0
            self._check_unique_wires(path, event, plane[a - r0 : b - r0], wire[a - r0 : b - r0])
            p, w = plane[rows], wire[rows]
            return [
                render_wire_samples(w[p == n], tick[p == n], value[p == n], (nw, ticks), self.render)
                for n, nw in enumerate(self.geometry.wires)
            ]

        return reference

    def _event_table(self, f, path: str):
        return require_group(f, path, "event_table", "not a MicroBooNE OpenSamples file?")

    def _wire_table(self, f, path: str) -> tuple:
        """The checked wire_table group and its event index."""
        wires = require_group(f, path, "wire_table", NOWIRE_HINT)
        n = require_columns(wires, path, WIRE_COLUMNS)
        adc = wires["adc"]
        if adc.shape[1] != self.geometry.ticks:
            raise InputError(
                path,
                f"wire_table/adc has {adc.shape[1]} ticks per wire, geometry "
                f"'{self.geometry.name}' has {self.geometry.ticks}",
                "pass the matching geometry=",
            )
        index = SeqIndex(wires, path)
        if index.n_rows != n:
            raise InputError(
                path,
                f"wire_table's seq_cnt counts {index.n_rows} rows but it holds {n}",
                "the file is truncated or corrupt",
            )
        return wires, index

    def _wire_numbers(self, path: str, local_wire: np.ndarray, plane: np.ndarray) -> np.ndarray:
        wire = local_wire.astype(np.int64)
        if np.any(wire != local_wire):
            raise InputError(path, "wire_table/local_wire holds non-integer wire numbers")
        if plane.size and (plane.min() < 0 or plane.max() > 2):
            raise InputError(path, f"wire_table/local_plane holds planes outside 0-2: {np.unique(plane)}")
        limit = np.asarray(self.geometry.wires)[plane]
        bad = (wire < 0) | (wire >= limit)
        if np.any(bad):
            i = np.flatnonzero(bad)[0]
            raise InputError(
                path,
                f"wire {wire[i]} on plane {plane[i]} is outside geometry "
                f"'{self.geometry.name}' ({limit[i]} wires)",
                "pass the matching geometry=",
            )
        return wire

    def _check_unique_wires(self, path: str, event: int, plane: np.ndarray, wire: np.ndarray) -> None:
        if not wire.size:
            return
        stride = max(self.geometry.wires)
        counts = np.bincount(plane.astype(np.int64) * stride + wire)
        if counts.max() > 1:
            p, w = divmod(int(np.argmax(counts)), stride)
            raise self._duplicate(path, event, p, w)

    @staticmethod
    def _duplicate(path: str, event: int, plane: int, wire: int) -> InputError:
        return InputError(path, f"event {event}: wire {wire} of plane {plane} has two rows in wire_table")


def _nonzero_samples(adc: RowBlocks, a: int, b: int, ticks: int):
    """Rows, ticks and values of the non-zero samples of rows ``[a, b)``."""
    rows, tick, value = [], [], []
    for row0, block in adc.blocks(a, b):
        mask = adc.scratch(block.shape, bool)  # reused: fresh pages cost more than the compare
        flat = np.flatnonzero(np.not_equal(block, 0, out=mask))
        value.append(block.reshape(-1)[flat])
        r, t = np.divmod(flat, ticks)
        rows.append(r + row0)
        tick.append(t)
    if not rows:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(tick), np.concatenate(value)
