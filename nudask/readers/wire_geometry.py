"""Detector geometries shared by the MicroBooNE reader and the simulator.

Real OpenSamples files carry no geometry: the reader assumes MicroBooNE's
unless told otherwise. The ``small`` geometry keeps the same physics
constants on a scaled-down wire and tick count, for fast tests and demos.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

PLANE_NAMES = ("u", "v", "y")  # local_plane 0, 1 (induction), 2 (collection)


@dataclass(frozen=True)
class WireGeometry:
    """Wire counts per plane and ticks per waveform of a LArTPC readout.

    Examples
    --------
    >>> MICROBOONE.n_wires
    8256
    >>> MICROBOONE.plane_shape("y")
    (3456, 6400)
    """

    name: str
    wires: tuple[int, int, int]
    ticks: int
    # physics constants (formats.md): drift cm per tick, trigger tick, pitch
    drift_cm_per_tick: float = 0.0549
    trigger_tick: int = 800
    wire_pitch_cm: float = 0.3
    # active volume, cm: x (drift) 0..x_max, y -y_half..y_half, z 0..z_max
    x_max: float = 256.0
    y_half: float = 116.0
    z_max: float = 1037.0

    @property
    def n_wires(self) -> int:
        return sum(self.wires)

    def plane_shape(self, view: str) -> tuple[int, int]:
        return (self.wires[PLANE_NAMES.index(view)], self.ticks)


MICROBOONE = WireGeometry("microboone", wires=(2400, 2400, 3456), ticks=6400)
# one tenth of the wires, a fifth of the ticks; the volume shrinks to match
SMALL = WireGeometry(
    "small",
    wires=(240, 240, 346),
    ticks=1280,
    x_max=25.6 * 2,
    y_half=11.6,
    z_max=103.7,
    trigger_tick=160,
)

GEOMETRIES = {g.name: g for g in (MICROBOONE, SMALL)}


def get_geometry(name: str | WireGeometry) -> WireGeometry:
    """Look a geometry up by name (``microboone`` or ``small``)."""
    if isinstance(name, WireGeometry):
        return name
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise ConfigError(f"unknown geometry {name!r}; known: {', '.join(sorted(GEOMETRIES))}") from None
