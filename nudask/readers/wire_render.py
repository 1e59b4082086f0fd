"""Readout -> images (pure, no I/O).

The wire rendering is the MicroBooNE OpenSamples notebook recipe: per plane,
sum blocks of ``factor`` consecutive ticks (the last, partial block padded
with zeros), set values below the cut-off to 0 and clip values above the
saturation. Cut-off and saturation scale with the factor (10 and 100 at 6).

Waveforms are ~99.7 % zeros, so :func:`render_wire_samples` works on the
non-zero samples only and yields the image directly as sorted COO; the dense
:func:`render_wire_plane` is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ..events import Coo
from ..sparse import segment_sum_coo, select


@dataclass(frozen=True)
class WireRender:
    """Settings of the wire rendering; ``None`` means "scale with factor"."""

    factor: int = 6
    cutoff: float | None = None
    saturation: float | None = None

    def __post_init__(self) -> None:
        if int(self.factor) != self.factor or self.factor < 1:
            raise ConfigError(f"render factor must be a positive integer, got {self.factor!r}")

    @property
    def threshold(self) -> float:
        return 10.0 * self.factor / 6 if self.cutoff is None else float(self.cutoff)

    @property
    def ceiling(self) -> float:
        return 100.0 * self.factor / 6 if self.saturation is None else float(self.saturation)

    def n_bins(self, ticks: int) -> int:
        """Time bins for ``ticks`` ticks (6400 ticks -> 1067 bins at factor 6)."""
        return -(-ticks // self.factor)

    def to_dict(self) -> dict:
        return {**asdict(self), "cutoff": self.threshold, "saturation": self.ceiling}


def render_wire_plane(adc: np.ndarray, settings: WireRender = WireRender()) -> np.ndarray:
    """Reference rendering of a dense ``(wires, ticks)`` plane.

    >>> adc = np.zeros((1, 12), np.float32); adc[0, :3] = 5; adc[0, 6] = 200
    >>> render_wire_plane(adc).tolist()
    [[15.0, 100.0]]
    """
    wires, ticks = adc.shape
    f = settings.factor
    padded = np.zeros((wires, settings.n_bins(ticks) * f), np.float32)
    padded[:, :ticks] = adc
    image = padded.reshape(wires, -1, f).sum(-1, dtype=np.float64).astype(np.float32)
    image[image < settings.threshold] = 0
    return np.minimum(image, np.float32(settings.ceiling))


def render_wire_samples(
    wire: np.ndarray,
    tick: np.ndarray,
    value: np.ndarray,
    shape: tuple[int, int],
    settings: WireRender = WireRender(),
) -> Coo:
    """Render one plane from its non-zero samples ``(wire, tick, value)``.

    ``shape`` is the plane's ``(wires, ticks)``. Gives the same image as
    :func:`render_wire_plane` on the dense plane, as COO sorted by
    (wire, time bin).
    """
    wires, ticks = shape
    bins = settings.n_bins(ticks)
    keys = wire.astype(np.int64) * bins + tick // settings.factor
    coo = segment_sum_coo(keys, value, (wires, bins))
    v = coo.values
    coo = select(coo, (v >= settings.threshold) & (v != 0))
    np.minimum(coo.values, np.float32(settings.ceiling), out=coo.values)
    return coo
