"""Skipper-CCD calibration: ADU images to electrons (pure numpy; no I/O).

* **Baseline** per row, from the ``overscan`` columns (the last ones, read
  after the active area), the ``prescan`` (the first ``CCDNPRES``), or the
  ``median`` of the row; the median of those pixels, so that charge does not
  pull it.
* **Gain** per amplifier in ADU per electron: the distance between the
  zero- and the one-electron peaks of the baseline-subtracted pixel histogram.
  The zero peak's width (the readout noise) comes from the overscan or the
  lower half of the zero peak; the one-electron peak is the most populated
  value more than 5 noise widths above zero, each peak refined as the mean of
  the pixels within 3 widths of it. Without resolved peaks (too few samples,
  ``NSAMP``, for the noise) measuring fails, and the gain must be given.

>>> rng = np.random.default_rng(0)
>>> e = rng.poisson(0.3, (200, 300))
>>> adu = 1000 + 150.0 * e + rng.normal(0, 15, e.shape)
>>> round(measure_gain(adu - 1000, noise=15.0))
150
"""

from __future__ import annotations

import numpy as np

BASELINES = ("overscan", "prescan", "median")


class CalibrationError(ValueError):
    """The image cannot be calibrated as asked (the reader makes it an InputError)."""


def baseline(image: np.ndarray, method: str, *, prescan: int, overscan: int) -> np.ndarray:
    """The baseline of each row (ADU), shape ``(rows, 1)``."""
    if method == "overscan":
        if overscan <= 0:
            raise CalibrationError("no overscan columns (give overscan=N, or baseline=prescan or median)")
        ref = image[:, -overscan:]
    elif method == "prescan":
        if prescan <= 0:
            raise CalibrationError("no prescan columns (CCDNPRES is 0; give baseline=overscan or median)")
        ref = image[:, :prescan]
    elif method == "median":
        ref = image
    else:
        raise CalibrationError(f"baseline must be one of {', '.join(BASELINES)}, not {method!r}")
    return np.median(ref, axis=1, keepdims=True)


def noise_of(values: np.ndarray) -> float:
    """Readout noise (ADU) of pixels without charge: a robust width (1.4826 x MAD)."""
    v = np.asarray(values, np.float64).ravel()
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _mode(values: np.ndarray, width: float) -> float:
    lo = values.min()
    counts = np.bincount(((values - lo) / width).astype(np.int64))
    return float(lo + (np.argmax(counts) + 0.5) * width)


def measure_gain(active: np.ndarray, *, noise: float) -> float:
    """ADU per electron from the zero- and one-electron peaks of baseline-subtracted pixels."""
    v = np.asarray(active, np.float64).ravel()
    if noise <= 0:
        raise CalibrationError("the readout noise is 0: give the gain")
    zero = _mode(v[np.abs(v) < 10 * noise + np.abs(np.median(v))], noise / 4)
    z = v[np.abs(v - zero) < 3 * noise]
    zero = float(z.mean()) if z.size else zero
    above = v[(v > zero + 5 * noise)]
    if above.size < 50:
        raise CalibrationError("too few pixels above the zero-electron peak to find the one-electron one")
    above = above[above < np.quantile(above, 0.9)]  # the tail (tracks) off
    one = _mode(above, noise / 4)
    o = v[np.abs(v - one) < 3 * noise]
    one = float(o.mean())
    gain = one - zero
    valley = np.count_nonzero(np.abs(v - (zero + gain / 2)) < noise / 2)
    peak = np.count_nonzero(np.abs(v - one) < noise / 2)
    if gain < 4 * noise or valley >= peak:
        raise CalibrationError(
            f"the one-electron peak is not resolved (noise {noise:.3g} ADU, peaks {gain:.3g} ADU apart)"
        )
    return gain


def to_electrons(
    image: np.ndarray,
    *,
    baseline_method: str = "overscan",
    prescan: int = 0,
    overscan: int = 0,
    gain: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """``(electrons of the active columns, gain ADU/e-, noise e-)`` of one amplifier's image."""
    img = np.asarray(image, np.float64)
    sub = img - baseline(img, baseline_method, prescan=prescan, overscan=overscan)
    active = sub[:, prescan : sub.shape[1] - overscan if overscan else None]
    if overscan > 0:
        noise = noise_of(sub[:, -overscan:])
    elif prescan > 0:
        noise = noise_of(sub[:, :prescan])
    else:
        low = active[active <= np.median(active)]
        noise = float(np.sqrt(np.mean(low**2)))  # the zero peak's lower half
    if gain is None:
        gain = measure_gain(active, noise=noise)
    return (active / gain).astype(np.float32), float(gain), noise / float(gain)
