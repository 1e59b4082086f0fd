"""The columnar read path (``Reader.read_batch`` -> ``batch_to_table``) and readers' storage hints."""

from __future__ import annotations

import dask.config
import numpy as np

from nudask.dataset.write import batch_to_table, events_to_table
from nudask.events import Coo, Event, EventBatch, EventId, ViewSpec
from nudask.pipeline import _settings
from nudask.schema import build_schema


def _events():
    out = []
    for k in range(4):
        img = np.zeros((3, 4), np.float32)
        img[k % 3, k] = k + 1.5
        coo = Coo.of((3, 4), tuple(np.nonzero(img)), value=img[img != 0], label=np.full(1, k, np.int32))
        dense = np.arange(6, dtype=np.float32).reshape(2, 3) * k
        meta = {"e": np.float32(k / 2), "name": f"ev{k}", "maybe": None if k % 2 else k, "v": np.ones(3) * k}
        out.append(Event(EventId(7, 1, k), k, meta, {"a": coo, "d": dense}))
    return out


def test_batch_of_events_writes_their_table_and_gives_them_back():
    views = {
        "a": ViewSpec("a", ("y", "x"), (3, 4), channels=(("value", "float32"), ("label", "int32"))),
        "d": ViewSpec("d", ("y", "x"), (2, 3), kind="dense"),
    }
    fields = {"e": ("<f4", ()), "name": ("str", ()), "maybe": ("<i8", ()), "v": ("<f8", (3,))}
    schema = build_schema(views, fields)
    events = _events()
    batch = EventBatch.concat([EventBatch.from_events(events[:1]), EventBatch.from_events(events[1:])])
    assert batch_to_table(batch, "f.x", schema).equals(events_to_table(events, "f.x", schema))
    assert batch_to_table(batch, "f.x", schema).column("maybe").to_pylist() == [0, None, 2, None]
    back = list(batch.events())
    assert [e.id for e in back] == [e.id for e in events]
    assert back[2].images["a"] == events[2].images["a"]
    np.testing.assert_array_equal(back[3].images["d"], events[3].images["d"])


def test_reader_storage_hints_apply_only_where_nothing_else_is_set():
    hints = {"events_per_chunk": 4096, "row_group_events": 1024}
    settings, storage = _settings(None, None, None, None, None, hints)
    assert (settings["events_per_chunk"], storage["row_group_events"]) == (4096, 1024)
    settings, storage = _settings(50, None, 8, None, None, hints)  # the call wins
    assert (settings["events_per_chunk"], storage["row_group_events"]) == (50, 8)
    with dask.config.set({"nudask.storage.row-group-events": 64}):  # the user's configuration wins
        assert _settings(None, None, None, None, None, hints)[1]["row_group_events"] == 64
    settings, storage = _settings(None, None, None, None, None, {})  # no hints: nudask's defaults
    assert (settings["events_per_chunk"], storage["row_group_events"]) == (20, 16)
    assert storage["compression_level"] == 9
    level = {"compression_level": 1}
    assert _settings(None, None, None, None, None, level)[1]["compression_level"] == 1
    assert _settings(None, None, None, None, 5, level)[1]["compression_level"] == 5
    with dask.config.set({"nudask.storage.compression-level": 12}):
        assert _settings(None, None, None, None, None, level)[1]["compression_level"] == 12
