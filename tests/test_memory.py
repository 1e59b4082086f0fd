"""A worker's peak memory is bounded by a few events, whatever the chunk size."""

from __future__ import annotations

import tracemalloc

import pytest

from nudask.events import Chunk
from nudask.pipeline import plan, run_chunk
from nudask.readers.microboone import MicroBooNEReader
from nudask.readers.wire_geometry import MICROBOONE
from nudask.simulate import simulate_microboone

DENSE_EVENT = MICROBOONE.n_wires * MICROBOONE.ticks * 4  # 211 MB of float32 waveforms


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_chunk(tmp_path):
    path = str(simulate_microboone(tmp_path / "bnb_WithWire_00.h5", n_events=8, seed=2))
    reader = MicroBooNEReader()
    the_plan = plan([path], reader, events_per_chunk=8, on_error="raise", eight_bit=False)
    storage = {"row_group_events": 4, "compression": "zstd", "compression_level": 9}

    def peak(n_events):
        tracemalloc.start()
        try:
            run_chunk(
                (Chunk(path, reader.name, 0, n_events),),
                reader=reader,
                out=str(tmp_path),
                schema=the_plan.schema,
                storage=storage,
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one, eight = peak(1), peak(8)
    assert one < DENSE_EVENT / 2  # never the dense wire table of an event
    assert eight < one + 8 * 5e6  # each further event adds its sparse output only
