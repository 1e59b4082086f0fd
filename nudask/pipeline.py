"""Inputs -> chunks -> one Dask task per chunk -> Parquet parts + manifest.

:func:`plan` opens each input once on the client to split it into chunks of
events balanced by rows; :func:`build` turns chunks into a lazy ``dask.bag``
(one partition, one task, per chunk); :func:`preprocess` runs it on the
current client (or a LocalCluster), journals finished chunks so a killed run
resumes, and writes the manifest last.
"""

from __future__ import annotations

import glob
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dask.bag as db
import pyarrow as pa

from . import config
from .dataset import Dataset, open_dataset
from .dataset.manifest import MANIFEST, new_manifest, part_name, write_manifest
from .dataset.write import events_to_table, file_sha256, write_parquet
from .errors import ConfigError, DataError, InputError
from .events import Chunk
from .readers import Reader, get_reader, guess_reader
from .resume import Journal, finished_chunks, is_complete, prepare_output
from .schema import SCHEMA_VERSION, build_schema

ON_ERROR = ("raise", "skip")


@dataclass
class Plan:
    """Chunks to run, the inputs that could not be planned, and the schema."""

    reader: Reader
    chunks: list[Chunk] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    schema: pa.Schema | None = None


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths of ``inputs``; glob patterns are expanded, order kept."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[str] = []
    for item in map(os.fspath, inputs):
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        out += [os.path.abspath(m) for m in matches]
    if not out:
        raise ConfigError(f"no input files match {list(inputs)!r}")
    return out


def plan(
    paths: Sequence[str], reader: Reader, *, events_per_chunk: int, on_error: str, eight_bit: bool
) -> Plan:
    """Split every input into chunks; bad inputs raise or are set aside."""
    result = Plan(reader)
    for path in paths:
        try:
            chunks = reader.chunks(path, events_per_chunk)
            if result.schema is None:
                result.schema = build_schema(
                    reader.views(path), reader.metadata_fields(path), eight_bit=eight_bit
                )
        except InputError as err:
            if on_error == "raise":
                raise
            result.failed.append({"path": path, "error": str(err)})
            continue
        result.chunks += chunks
        result.inputs.append({"path": path, "size": os.path.getsize(path), "events": chunks[-1].stop})
    return result


def run_chunk(chunk: Chunk, *, reader: Reader, out: str, schema: pa.Schema, storage: dict) -> dict:
    """Read, render and sparsify one chunk and write its Parquet file (one Dask task)."""
    t0 = time.perf_counter()
    events = list(reader.read(chunk))
    table = events_to_table(events, chunk.path, schema)
    info = write_parquet(table, os.path.join(out, part_name(chunk)), **storage)
    return {
        "chunk": asdict(chunk),
        "file": info,
        "seconds": round(time.perf_counter() - t0, 3),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def build(reader: Reader, chunks: Sequence[Chunk], schema: pa.Schema, out: str, *, storage: dict) -> db.Bag:
    """Lazy bag of chunk records: one partition (one task) per chunk."""
    bag = db.from_sequence(chunks, npartitions=max(1, len(chunks)))
    return bag.map(run_chunk, reader=reader, out=out, schema=schema, storage=storage)


def _run(
    client,
    bag: db.Bag,
    chunks: Sequence[Chunk],
    *,
    journal: Journal,
    on_error: str,
    retries: int,
    progress: bool,
) -> list[dict]:
    """Compute the bag's tasks, journaling each finished chunk as it arrives."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = client.compute(bag.to_delayed(), retries=retries)
    chunk_of = {f.key: c for f, c in zip(futures, chunks)}
    records = []
    bar = tqdm(total=len(futures), unit="chunk", desc="nudask preprocess", disable=not progress)
    try:
        for fut in as_completed(futures):
            chunk = chunk_of[fut.key]
            if fut.status == "error":
                err = fut.exception()
                if on_error == "raise":
                    raise err
                record: dict[str, Any] = {"chunk": asdict(chunk), "error": f"{type(err).__name__}: {err}"}
            else:
                (record,) = fut.result()
                journal.add(record)
            records.append(record)
            bar.update(1)
    finally:
        bar.close()
        client.cancel(futures)
    return records


def _settings(events_per_chunk, eight_bit, row_group_events, compression, compression_level):
    settings = {
        "events_per_chunk": int(config.get("preprocess.events-per-chunk", events_per_chunk)),
        "eight_bit": bool(config.get("storage.eight-bit", eight_bit)),
    }
    storage = {
        "row_group_events": int(config.get("storage.row-group-events", row_group_events)),
        "compression": config.get("storage.compression", compression),
        "compression_level": config.get("storage.compression-level", compression_level),
    }
    return settings, storage


def preprocess(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    reader: str | Reader | None = None,
    reader_options: dict | None = None,
    events_per_chunk: int | None = None,
    on_error: str | None = None,
    overwrite: bool = False,
    eight_bit: bool | None = None,
    row_group_events: int | None = None,
    compression: str | None = None,
    compression_level: int | None = None,
    retries: int | None = None,
    checksum: bool | None = None,
    client=None,
    progress: bool = True,
) -> Dataset:
    """Render and sparsify ``inputs`` into a Parquet dataset at ``out``.

    Runs on the current Dask client, or on a LocalCluster started (and
    stopped) here. A failing chunk is retried ``retries`` times; then, with
    ``on_error="skip"``, it is listed in the manifest's ``failed`` (as are
    unreadable files) and the rest is written; with ``"raise"`` (default) a
    bad input stops the run, before anything is written when the file can be
    seen to be bad up front. Running the same call again resumes a run that
    was cut short and does nothing for a finished dataset; other settings
    against an existing output are refused unless ``overwrite=True``.

    Returns the dataset, opened.
    """
    on_error = config.get("preprocess.on-error", on_error)
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    paths = expand_inputs(inputs)
    out = os.path.abspath(os.fspath(out))
    rdr = get_reader(reader or guess_reader(paths[0]), **(reader_options or {}))
    settings, storage = _settings(
        events_per_chunk, eight_bit, row_group_events, compression, compression_level
    )
    the_plan = plan(paths, rdr, on_error=on_error, **settings)
    if the_plan.schema is None:
        raise DataError(f"none of the {len(paths)} inputs can be read: {the_plan.failed}")
    spec = {
        "schema_version": SCHEMA_VERSION,
        "reader": rdr.name,
        "reader_options": rdr.options(),
        "settings": {**settings, **storage},
        "inputs": paths,
    }
    resuming = prepare_output(out, spec, overwrite=overwrite)
    done = finished_chunks(out, the_plan.chunks) if resuming else {}
    todo = [c for c in the_plan.chunks if c not in done]
    if not todo and is_complete(out):
        if progress:
            print(f"nudask: {out} is complete; nothing to do", flush=True)
        return open_dataset(out)
    if progress and done:
        print(f"nudask: resuming: {len(done)} of {len(the_plan.chunks)} chunks already written")

    from .cluster import client_or_local
    from .monitor import monitor_run

    t0 = time.perf_counter()
    bag = build(rdr, todo, the_plan.schema, out, storage=storage)
    journal = Journal(out)
    try:
        with (
            client_or_local(client, verbose=progress) as cl,
            monitor_run(cl, out, report=config.get("preprocess.performance-report")) as run_log,
        ):
            sums = []
            if config.get("preprocess.checksum", checksum):
                sums = cl.map(file_sha256, [i["path"] for i in the_plan.inputs], pure=False)
            new = _run(
                cl,
                bag,
                todo,
                journal=journal,
                on_error=on_error,
                retries=int(config.get("preprocess.retries", retries)),
                progress=progress,
            )
            run_log.add_chunks(new)  # this run's chunks only: events/s of this run
            run_log.extra["resumed_chunks"] = len(done)
            records = list(done.values()) + new
            for info, digest in zip(the_plan.inputs, cl.gather(sums)):
                info["sha256"] = digest
    finally:
        journal.close()
    manifest = _manifest(rdr, settings, storage, the_plan, records, time.perf_counter() - t0)
    write_manifest(out, manifest)
    if progress:
        n_fail = len(manifest["failed"])
        print(
            f"nudask: wrote {manifest['events']} events in {len(manifest['files'])} files to {out}"
            + (f"; {n_fail} failed (see {MANIFEST})" if n_fail else ""),
            flush=True,
        )
    return open_dataset(out)


def _manifest(
    rdr: Reader, settings: dict, storage: dict, the_plan: Plan, records: list[dict], seconds: float
) -> dict:
    files = sorted((r for r in records if "file" in r), key=lambda r: r["file"]["name"])
    return new_manifest(
        reader=rdr.name,
        reader_options=rdr.options(),
        settings={**settings, **storage},
        events=sum(r["file"]["rows"] for r in files),
        inputs=the_plan.inputs,
        files=[
            {
                **r["file"],
                "source": r["chunk"]["path"],
                "start": r["chunk"]["start"],
                "stop": r["chunk"]["stop"],
            }
            for r in files
        ],
        failed=the_plan.failed
        + [
            {
                "path": r["chunk"]["path"],
                "start": r["chunk"]["start"],
                "stop": r["chunk"]["stop"],
                "error": r["error"],
            }
            for r in records
            if "error" in r
        ],
        run={
            "seconds": round(seconds, 3),
            "chunks": len(records),
            "workers": sorted({r["worker"] for r in records if "worker" in r}),
        },
    )
