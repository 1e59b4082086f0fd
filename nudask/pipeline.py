"""Inputs -> chunks -> one Dask task per chunk -> Parquet parts + manifest.

:func:`plan` opens each input once on the client to split it into chunks of
events balanced by rows; :func:`build` turns the chunks into a lazy
``dask.bag`` (one partition, one task, per chunk); :func:`preprocess` runs it
on the current client (or a LocalCluster) and writes the manifest.
"""

from __future__ import annotations

import glob
import os
import shutil
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
from .errors import InputError
from .events import Chunk
from .readers import Reader, get_reader, guess_reader
from .schema import build_schema

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
        raise ValueError(f"no input files match {list(inputs)!r}")
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


def run_chunk(chunk: Chunk, *, reader: Reader, out: str, schema: pa.Schema, on_error: str,
              storage: dict) -> dict:
    """Read, render and sparsify one chunk and write its Parquet file (a Dask task)."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"chunk": asdict(chunk), "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        events = list(reader.read(chunk))
        table = events_to_table(events, chunk.path, schema)
        record["file"] = write_parquet(table, os.path.join(out, part_name(chunk)), **storage)
    except Exception as err:
        if on_error == "raise":
            raise
        record["error"] = f"{type(err).__name__}: {err}"
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


def build(the_plan: Plan, out: str, *, on_error: str, storage: dict) -> db.Bag:
    """Lazy bag of chunk records: one partition (one task) per chunk."""
    bag = db.from_sequence(the_plan.chunks, npartitions=max(1, len(the_plan.chunks)))
    return bag.map(run_chunk, reader=the_plan.reader, out=out, schema=the_plan.schema,
                   on_error=on_error, storage=storage)


def prepare_output(out: str, overwrite: bool) -> None:
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise FileExistsError(
                f"output '{out}' exists and is not empty; pass overwrite=True (--overwrite) to replace it"
            )
        if not os.path.exists(os.path.join(out, MANIFEST)) and not any(
            n.startswith("part-") for n in os.listdir(out)
        ):
            raise FileExistsError(f"output '{out}' is not a nudask dataset; refusing to delete it")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)


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
    stopped) here. With ``on_error="skip"`` bad files and chunks are listed
    in the manifest's ``failed`` and the rest is written; with ``"raise"``
    (default) a bad input stops the run before anything is written.

    Returns the dataset, opened.
    """
    on_error = config.get("preprocess.on-error", on_error)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    paths = expand_inputs(inputs)
    out = os.path.abspath(os.fspath(out))
    rdr = get_reader(reader or guess_reader(paths[0]), **(reader_options or {}))
    settings = {
        "events_per_chunk": int(config.get("preprocess.events-per-chunk", events_per_chunk)),
        "eight_bit": bool(config.get("storage.eight-bit", eight_bit)),
    }
    storage = {
        "row_group_events": int(config.get("storage.row-group-events", row_group_events)),
        "compression": config.get("storage.compression", compression),
        "compression_level": config.get("storage.compression-level", compression_level),
    }
    the_plan = plan(paths, rdr, on_error=on_error, **settings)
    if the_plan.schema is None:
        raise ValueError(f"none of the {len(paths)} inputs can be read: {the_plan.failed}")
    prepare_output(out, overwrite)
    bag = build(the_plan, out, on_error=on_error, storage=storage)
    t0 = time.perf_counter()
    from .cluster import client_or_local

    with client_or_local(client, verbose=progress) as cl:
        futures = cl.compute(bag.to_delayed(), retries=config.get("preprocess.retries", retries))
        sums = []
        if config.get("preprocess.checksum", checksum):
            sums = cl.map(file_sha256, [i["path"] for i in the_plan.inputs], pure=False)
        if progress:
            from distributed import progress as progress_bar

            progress_bar(futures)
            print(flush=True)
        records = [r for part in cl.gather(futures) for r in part]
        for info, digest in zip(the_plan.inputs, cl.gather(sums)):
            info["sha256"] = digest
    files = sorted((r for r in records if "file" in r), key=lambda r: r["file"]["name"])
    manifest = new_manifest(
        reader=rdr.name,
        reader_options=rdr.options(),
        settings={**settings, **storage},
        events=sum(r["file"]["rows"] for r in files),
        inputs=the_plan.inputs,
        files=[{**r["file"], "source": r["chunk"]["path"], "start": r["chunk"]["start"],
                "stop": r["chunk"]["stop"]} for r in files],
        failed=the_plan.failed + [
            {"path": r["chunk"]["path"], "start": r["chunk"]["start"], "stop": r["chunk"]["stop"],
             "error": r["error"]} for r in records if "error" in r
        ],
        run={"seconds": round(time.perf_counter() - t0, 3), "chunks": len(records),
             "workers": sorted({r["worker"] for r in records})},
    )
    write_manifest(out, manifest)
    if progress:
        n_fail = len(manifest["failed"])
        print(f"nudask: wrote {manifest['events']} events in {len(files)} files to {out}"
              + (f"; {n_fail} failed (see {MANIFEST})" if n_fail else ""), flush=True)
    return open_dataset(out)
