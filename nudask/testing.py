"""``ReaderContract``: the tests every reader must pass.

A reader's test class inherits it and provides two fixtures, ``reader`` (a
configured instance) and ``sample_file`` (a path that reader can read, with
a few events)::

    class TestMyReader(ReaderContract):
        @pytest.fixture
        def reader(self):
            return MyReader()

        @pytest.fixture
        def sample_file(self, tmp_path):
            return write_my_file(tmp_path / "x.dat", n_events=7)
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from .errors import InputError
from .events import Chunk, Coo


def _all_events(reader, path, per_chunk):
    return [ev for c in reader.chunks(path, per_chunk) for ev in reader.read(c)]


class ReaderContract:
    """Inherit and provide the ``reader`` and ``sample_file`` fixtures."""

    def test_chunks_cover_every_event_once(self, reader, sample_file):
        n = len(reader.event_weights(sample_file))
        for per_chunk in (1, 2, 3, n + 5):
            chunks = reader.chunks(sample_file, per_chunk)
            assert chunks[0].start == 0 and chunks[-1].stop == n
            assert all(len(c) > 0 for c in chunks)
            assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
            assert {c.reader for c in chunks} == {reader.name}

    def test_read_yields_each_event_of_the_chunk(self, reader, sample_file):
        for chunk in reader.chunks(sample_file, 2):
            assert [ev.index for ev in reader.read(chunk)] == list(range(chunk.start, chunk.stop))

    def test_event_ids_are_unique(self, reader, sample_file):
        ids = [ev.id for ev in _all_events(reader, sample_file, 3)]
        assert len(ids) == len(set(ids)) == len(reader.event_weights(sample_file))

    def test_chunking_does_not_change_events(self, reader, sample_file):
        one = _all_events(reader, sample_file, 1)
        whole = list(reader.read(Chunk(str(sample_file), reader.name, 0, len(one))))
        for a, b in zip(one, whole, strict=True):
            assert a.id == b.id and a.images.keys() == b.images.keys()
            for name, image in a.images.items():
                other = b.images[name]
                same = image == other if isinstance(image, Coo) else np.array_equal(image, other)
                assert same, f"view {name} differs with the chunking"
            assert a.metadata.keys() == b.metadata.keys()
            for k in a.metadata:
                np.testing.assert_array_equal(a.metadata[k], b.metadata[k])

    def test_images_match_declared_views(self, reader, sample_file):
        views = reader.views(sample_file)
        for ev in _all_events(reader, sample_file, 4):
            assert set(ev.images) == set(views)
            for name, image in ev.images.items():
                spec = views[name]
                assert all(s <= m for s, m in zip(image.shape, spec.shape))
                assert len(image.shape) == len(spec.shape) == len(spec.axes)
                if not isinstance(image, Coo):  # a dense image, for a dense view
                    assert spec.kind == "dense", f"view {name}: arrays are for dense views; give a Coo"
                    assert image.dtype == np.dtype(spec.dtype)
                    continue
                assert len(image.index) == len(spec.axes)
                assert image.values.dtype == np.dtype(spec.dtype)
                if len(spec.channels) > 1:
                    assert list(image.channels) == list(spec.channel_names), f"view {name}: channels"
                    for (channel, dtype), values in zip(spec.channels, image.channels.values()):
                        assert values.dtype == np.dtype(dtype) and values.size == image.nnz, channel
                assert np.all(image.values != 0), "COO must hold non-zero values only"
                if image.nnz:
                    flat = np.ravel_multi_index(image.index, image.shape)  # also checks bounds
                    assert np.all(np.diff(flat) > 0), "indices must be sorted and unique"

    def test_metadata_match_declared_fields(self, reader, sample_file):
        fields = reader.metadata_fields(sample_file)
        for ev in _all_events(reader, sample_file, 5):
            assert set(ev.metadata) == set(fields)
            for name, (_kind, shape) in fields.items():
                assert np.shape(ev.metadata[name]) == shape, name

    def test_events_survive_the_schema_and_the_parquet_writer(self, reader, sample_file, tmp_path):
        """What the reader yields is what a dataset gives back, channel by channel."""
        from .dataset import open_dataset
        from .dataset.write import events_to_table, write_parquet
        from .records import Manifest, PartFile
        from .schema import build_schema
        from .sparse import to_coo

        views = reader.views(sample_file)
        events = _all_events(reader, sample_file, 3)
        schema = build_schema(views, reader.metadata_fields(sample_file))
        folder = tmp_path / "ds"
        folder.mkdir()
        info = write_parquet(
            events_to_table(events, str(sample_file), schema), str(folder / "part-0.parquet")
        )
        part = PartFile(info["name"], info["rows"], info["bytes"], info["sha256"])
        Manifest(reader.name, reader.options(), {}, [], [part], roles=reader.roles().to_json()).write(
            str(folder)
        )
        ds = open_dataset(folder)
        meta = ds.metadata
        assert len(ds) == len(events)
        for k, ev in enumerate(events):
            assert (meta["run"][k], meta["subrun"][k], meta["event"][k]) == (
                ev.id.run,
                ev.id.subrun,
                ev.id.event,
            )
            back = ds.coo(k)
            for name, image in ev.images.items():
                want = image if isinstance(image, Coo) else to_coo(image)
                got = back[name]
                assert got.shape == want.shape, name
                for a, b in zip(got.index, want.index):
                    np.testing.assert_array_equal(a, b)
                for (cg, g), w in zip(got.channels.items(), want.channels.values()):
                    np.testing.assert_array_equal(g, w, err_msg=f"view {name}, channel {cg}")
            for field, value in ev.metadata.items():
                stored = meta[field][k]
                if isinstance(value, (str, bytes, np.str_)):
                    assert str(stored) == str(value), field
                else:
                    np.testing.assert_array_equal(np.asarray(stored), np.asarray(value), err_msg=field)
        roles = ds.roles
        assert set(roles.columns()) <= set(meta.columns), "roles name columns the dataset lacks"

    def test_columnar_and_per_event_paths_write_the_same_table(self, reader, sample_file):
        """``read_batch`` (or the batch of the events, for a reader without one) makes the
        table the per-event writer makes, column by column; its events are ``read``'s."""
        from .dataset.write import batch_to_table, events_to_table
        from .events import EventBatch
        from .schema import build_schema

        schema = build_schema(reader.views(sample_file), reader.metadata_fields(sample_file))
        for chunk in reader.chunks(sample_file, 3):
            events = list(reader.read(chunk))
            batch = reader.read_batch(chunk)
            if batch is not None:
                assert len(batch) == len(events)
                for a, b in zip(batch.events(), events, strict=True):
                    assert (a.id, a.index) == (b.id, b.index)
            else:
                batch = EventBatch.from_events(events)
            want = events_to_table(events, str(sample_file), schema)
            got = batch_to_table(batch, str(sample_file), schema)
            assert got.schema.equals(want.schema, check_metadata=True)
            for name in schema.names:
                assert got.column(name).equals(want.column(name)), f"column {name} differs"

    def test_missing_file_is_an_input_error(self, reader, tmp_path):
        missing = tmp_path / "missing.h5"
        with pytest.raises(InputError, match="missing.h5.*no such file"):
            reader.event_weights(str(missing))

    def test_garbage_file_is_an_input_error(self, reader, tmp_path):
        bad = tmp_path / "garbage.h5"
        bad.write_bytes(b"this is not a detector file\n" * 100)
        with pytest.raises(InputError, match="garbage.h5"):
            reader.event_weights(str(bad))

    def test_empty_file_is_an_input_error(self, reader, tmp_path):
        empty = tmp_path / "empty.h5"
        empty.write_bytes(b"")
        with pytest.raises(InputError, match="empty.h5.*empty"):
            reader.event_weights(str(empty))

    def test_truncated_file_is_an_input_error(self, reader, sample_file, tmp_path):
        data = open(sample_file, "rb").read()
        cut = tmp_path / "truncated.h5"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(InputError, match="truncated.h5"):
            for chunk in reader.chunks(str(cut), 2):
                list(reader.read(chunk))

    def test_reader_survives_pickling(self, reader):
        copy = pickle.loads(pickle.dumps(reader))
        assert copy == reader and copy.options() == reader.options()
