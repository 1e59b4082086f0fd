"""Toy simulators writing files in the public input formats (demo and test data).

- :func:`simulate_microboone`: MicroBooNE OpenSamples HDF5 (formats.md section 1).
- :func:`simulate_nova`: NOvA-like pixel maps (formats.md section 2).
"""

from __future__ import annotations

from .microboone import simulate_microboone
from .nova import simulate_nova

__all__ = ["simulate_microboone", "simulate_nova"]
