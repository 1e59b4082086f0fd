"""Inputs -> chunks -> one Dask task per chunk -> Parquet parts + manifest.

:func:`plan` opens each input once (on the workers when there are many) to
split it into chunks of events balanced by rows and merges the views of
all inputs into one schema; small chunks (files of a few events) are packed
into tasks of about ``events_per_chunk`` events. :func:`build` turns the
tasks into a lazy ``dask.bag`` (one partition, one task, one Parquet part
each); :func:`preprocess` runs it on the current client (or a LocalCluster),
journals finished tasks so a killed run resumes, and writes the manifest last.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import dask.bag as db
import dask.config
import pyarrow as pa

from . import config
from .dataset.manifest import MANIFEST, part_name
from .dataset.write import batch_to_table, events_to_table, file_sha256, write_parquet
from .errors import ConfigError, DatasetError, InputError, OutputError
from .events import Chunk, EventBatch
from .lock import locked
from .readers import Reader, get_reader, guess_reader
from .records import ChunkResult, Failure, InputFile, Manifest, PartFile
from .resume import (
    Journal,
    changed_inputs,
    clean_temporary,
    finished_chunks,
    is_complete,
    prepare_output,
    record_inputs,
)
from .schema import SCHEMA_VERSION, VALUE_STORAGE, build_schema, merge_fields, merge_views

if TYPE_CHECKING:
    from .dataset import Dataset

ON_ERROR = ("raise", "skip")


@dataclass
class Plan:
    """What a run will do: tasks of chunks, the inputs and their fate, the merged schema."""

    reader: Reader
    tasks: list[tuple[Chunk, ...]] = field(default_factory=list)
    inputs: list[InputFile] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    schema: pa.Schema | None = None

    @property
    def chunks(self) -> list[Chunk]:
        return [c for task in self.tasks for c in task]


@dataclass(frozen=True)
class FilePlan:
    """One input, planned: its chunks, views and metadata fields; or why it cannot be used."""

    path: str
    chunks: list[Chunk] = field(default_factory=list)
    views: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    size: int = 0
    mtime: float = 0.0
    error: InputError | None = None


LOCAL_PLAN_FILES = 16  # more inputs than this are planned by the workers, in batches
PLAN_BATCH = 64


class Inputs(list):
    """The input paths found (a list), and the patterns that matched nothing."""

    def __init__(self, paths=(), unmatched=()):
        super().__init__(paths)
        self.unmatched: list[str] = list(unmatched)


def expand_inputs(
    inputs: str | os.PathLike | Iterable[str | os.PathLike], *, on_error: str = "raise"
) -> Inputs:
    """Absolute paths of ``inputs``, order kept.

    A path that exists is that file, whatever characters it holds; only one
    that does not exist is expanded as a glob pattern. A pattern (or path)
    matching nothing is an :class:`InputError`, or with ``on_error="skip"``
    is listed in the result's ``unmatched``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = Inputs()
    for item in (os.fspath(i) for i in inputs):
        matches = [item] if os.path.exists(item) else sorted(glob.glob(item))
        if not matches:
            if on_error == "raise":
                raise InputError(item, "no such file, and no input files match it as a pattern",
                                 "check the path or pattern")  # fmt: skip
            out.unmatched.append(item)
        out += [os.path.abspath(m) for m in matches]
    if not out:
        raise InputError(
            ", ".join(out.unmatched) or "[]", "no input files match", "check the paths or patterns"
        )
    return out


def plan_files(paths: Sequence[str], reader: Reader, events_per_chunk: int) -> list[FilePlan]:
    """Open each of ``paths`` once: chunks, views, fields (a Dask task for many inputs)."""
    out = []
    for path in paths:
        try:
            chunks = reader.chunks(path, events_per_chunk)
            views, fields = reader.views(path), reader.metadata_fields(path)
            out.append(FilePlan(path, chunks, views, fields, os.path.getsize(path), os.path.getmtime(path)))
        except InputError as err:
            out.append(FilePlan(path, error=err))
    return out


def plan(
    paths: Sequence[str],
    reader: Reader,
    *,
    events_per_chunk: int,
    on_error: str,
    eight_bit: bool,
    values: str = "exact",
    client=None,
) -> Plan:
    """Split every input into chunks and merge their views; bad inputs raise or are set aside.

    With a ``client`` and many inputs, the files are opened on the workers.
    """
    if client is not None and len(paths) > LOCAL_PLAN_FILES:
        batches = [paths[k : k + PLAN_BATCH] for k in range(0, len(paths), PLAN_BATCH)]
        futures = client.map(
            plan_files, batches, reader=reader, events_per_chunk=events_per_chunk, pure=False
        )
        planned = [fp for batch in client.gather(futures) for fp in batch]
    else:
        planned = plan_files(paths, reader, events_per_chunk)
    result = Plan(reader)
    views: dict | None = None
    fields: dict | None = None
    chunks: list[Chunk] = []
    for fp in planned:
        try:
            if fp.error is not None:
                raise fp.error
            merged_views = fp.views if views is None else merge_views(views, fp.views, fp.path)
            merged_fields = fp.fields if fields is None else merge_fields(fields, fp.fields, fp.path)
        except InputError as err:
            if on_error == "raise":
                raise
            result.failed.append(Failure(fp.path, str(err)))
            continue
        views, fields = merged_views, merged_fields
        chunks += fp.chunks
        result.inputs.append(InputFile(fp.path, fp.size, fp.chunks[-1].stop, mtime=fp.mtime))
    if views is not None and fields is not None:
        result.schema = build_schema(views, fields, eight_bit=eight_bit, values=values)
    result.tasks = group_chunks(chunks, events_per_chunk)
    return result


def group_chunks(chunks: Sequence[Chunk], events_per_chunk: int) -> list[tuple[Chunk, ...]]:
    """Consecutive chunks packed into tasks of at most ``events_per_chunk`` events.

    A large file's chunks are tasks of their own; many small files share one.

    >>> cs = [Chunk(f"f{k}", "r", 0, 1) for k in range(5)] + [Chunk("big", "r", 0, 3)]
    >>> [len(t) for t in group_chunks(cs, 3)]
    [3, 2, 1]
    """
    tasks: list[tuple[Chunk, ...]] = []
    current: list[Chunk] = []
    for chunk in chunks:
        if current and sum(map(len, current)) + len(chunk) > events_per_chunk:
            tasks.append(tuple(current))
            current = []
        current.append(chunk)
    if current:
        tasks.append(tuple(current))
    return tasks


def run_chunk(
    chunks: tuple[Chunk, ...],
    *,
    reader: Reader,
    out: str,
    schema: pa.Schema,
    storage: dict,
    on_error: str = "raise",
) -> ChunkResult:
    """Read, render and sparsify the chunks of one task into one Parquet file (one Dask task).

    With ``on_error="skip"`` a chunk that cannot be read is set aside and the
    others are written, so one bad small file does not sink its neighbours.
    """
    t0 = time.perf_counter()
    events, sources, failed = [], [], []
    batches: list[EventBatch] = []
    for chunk in chunks:
        try:
            batch = reader.read_batch(chunk)
            mine = list(reader.read(chunk)) if batch is None else []
        except InputError as err:
            if on_error == "raise" or len(chunks) == 1:
                raise
            failed.append(Failure(chunk.path, f"{type(err).__name__}: {err}", chunk.start, chunk.stop))
            continue
        if batch is not None:
            batches.append(batch)
        events += mine
        sources += [chunk.path] * (len(mine) if batch is None else len(batch))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if not sources:
        return ChunkResult(
            tuple(chunks), None, round(time.perf_counter() - t0, 3), worker, failed=tuple(failed)
        )
    written = tuple(c for c in chunks if not any(f.path == c.path and f.start == c.start for f in failed))
    table = (
        batch_to_table(EventBatch.concat(batches), sources, schema)
        if batches
        else events_to_table(events, sources, schema)
    )
    info = write_parquet(table, os.path.join(out, part_name(chunks)), **storage)
    part = PartFile(info["name"], info["rows"], info["bytes"], info["sha256"], written, info["footer_sha256"])
    return ChunkResult(tuple(chunks), part, round(time.perf_counter() - t0, 3), worker, failed=tuple(failed))


def build(
    reader: Reader,
    tasks: Sequence[tuple[Chunk, ...]],
    schema: pa.Schema,
    out: str,
    *,
    storage: dict,
    on_error: str = "raise",
) -> db.Bag:
    """Lazy bag of chunk results: one partition (one Dask task) per task of chunks."""
    bag = db.from_sequence(tasks, npartitions=max(1, len(tasks)))
    return bag.map(run_chunk, reader=reader, out=out, schema=schema, storage=storage, on_error=on_error)


def _run(
    client,
    futures: Sequence,
    tasks: Sequence[tuple[Chunk, ...]],
    *,
    journal: Journal,
    on_error: str,
    progress: bool,
    tail: Callable[[], None] | None = None,
) -> list[ChunkResult]:
    """Gather the futures of the bag's tasks, journaling each finished one as it arrives.

    ``tail`` is called once, as soon as no chunk task waits for a worker thread any
    more: what it submits then runs on the threads the last chunks leave idle.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    task_of = {f.key: t for f, t in zip(futures, tasks)}
    results: list[ChunkResult] = []
    bar = tqdm(total=len(futures), unit="chunk", desc="nudask preprocess", disable=not progress)
    pending = [tail] if tail is not None else []

    def start_tail() -> None:
        if pending and len(futures) - len(results) <= sum(client.nthreads().values()):
            pending.pop()()

    try:
        start_tail()
        for fut in as_completed(futures):
            task = task_of[fut.key]
            if fut.status == "error":
                err = fut.exception()
                if on_error == "raise" or isinstance(
                    err, OutputError
                ):  # a full disk is not the input's fault
                    raise err
                result = ChunkResult(task, error=f"{type(err).__name__}: {err}")
            else:
                (result,) = fut.result()
                journal.add(result)
            results.append(result)
            bar.update(1)
            start_tail()
    finally:
        bar.close()
        client.cancel(futures)
    return results


def _hinted(key: str, value, hint):
    """``value``, else the user's configured ``key``, else the reader's ``hint``, else nudask's default."""
    got = config.get(key, value)
    if value is None and hint is not None and got == dask.config.get(f"nudask.{key}", config=config.DEFAULTS):
        return hint
    return got


def _settings(
    events_per_chunk, eight_bit, row_group_events, compression, compression_level, hints=None, values=None
):
    hints = hints or {}
    settings = {
        "events_per_chunk": int(
            _hinted("preprocess.events-per-chunk", events_per_chunk, hints.get("events_per_chunk"))
        ),
        "eight_bit": bool(config.get("storage.eight-bit", eight_bit)),
        "values": str(config.get("storage.values", values)),
    }
    if settings["values"] not in VALUE_STORAGE:
        raise ConfigError(
            f"values (storage.values) must be one of {list(VALUE_STORAGE)}, got {settings['values']!r}"
        )
    storage = {
        "row_group_events": int(
            _hinted("storage.row-group-events", row_group_events, hints.get("row_group_events"))
        ),
        "compression": config.get("storage.compression", compression),
        "compression_level": _hinted(
            "storage.compression-level", compression_level, hints.get("compression_level")
        ),
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
    update: bool = False,
    eight_bit: bool | None = None,
    values: str | None = None,
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
    against an existing output are refused unless ``overwrite=True``. An input
    whose size, mtime (or recorded sha256) changed since is refused, or its
    chunks are redone with ``update=True``.

    ``eight_bit=True`` stores the first channel of views with a saturation as
    8-bit codes; ``values="float16"`` stores the other floating value channels
    as half floats (relative error at most 2^-11, see :mod:`nudask.schema`);
    ``values="exact"`` (default) keeps them as the reader gives them.

    Returns the dataset, opened.
    """
    on_error = config.get("preprocess.on-error", on_error)
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    out = os.path.abspath(os.fspath(out))
    named = get_reader(reader, **(reader_options or {})) if reader is not None else None  # options first
    paths = expand_inputs(inputs, on_error=on_error)
    rdr = named or get_reader(guess_reader(paths[0]), **(reader_options or {}))
    settings, storage = _settings(
        events_per_chunk, eight_bit, row_group_events, compression, compression_level, rdr.storage_hints,
        values,
    )  # fmt: skip
    from .cluster import client_or_local
    from .monitor import monitor_run

    with contextlib.ExitStack() as stack:
        stack.enter_context(locked(out))  # one writer per dataset, for the whole run
        stack.callback(clean_temporary, out)  # at the end of the run, whatever its fate
        clients: list = []

        def get_client():  # a LocalCluster starts only when there is work for it
            if not clients:
                clients.append(stack.enter_context(client_or_local(client, verbose=progress)))
            return clients[0]

        the_plan = plan(
            paths, rdr, on_error=on_error, client=get_client() if len(paths) > LOCAL_PLAN_FILES else None,
            **settings,
        )  # fmt: skip
        the_plan.failed += [Failure(p, "no input files match this path or pattern") for p in paths.unmatched]
        if the_plan.schema is None:
            raise InputError(
                paths[0] if len(paths) == 1 else f"{len(paths)} inputs",
                "none of the inputs can be read: " + "; ".join(f.error for f in the_plan.failed),
            )
        spec = {
            "schema_version": SCHEMA_VERSION,
            "reader": rdr.name,
            "reader_options": rdr.options(),
            "settings": {**settings, **storage},
            "inputs": list(paths),
        }
        resuming = prepare_output(out, spec, overwrite=overwrite)
        done = finished_chunks(out, the_plan.tasks) if resuming else {}
        changed = changed_inputs(out, the_plan.inputs) if resuming else {}
        if changed and not update:
            path, why = next(iter(changed.items()))
            raise InputError(
                path, f"changed since the dataset was written ({why})"
                + (f"; {len(changed) - 1} other input(s) changed too" if len(changed) > 1 else ""),
                "pass update=True (--update) to redo its chunks, or overwrite=True (--overwrite)",
            )  # fmt: skip
        if changed:
            done = {t: r for t, r in done.items() if not any(c.path in changed for c in t)}
        record_inputs(out, the_plan.inputs)
        todo = [t for t in the_plan.tasks if t not in done]
        if not todo and is_complete(out) and _manifest_matches(out, done):
            if progress:
                print(f"nudask: {out} is complete; nothing to do", flush=True)
            return _opened(out)
        if progress and done:
            print(f"nudask: resuming: {len(done)} of {len(the_plan.tasks)} chunks already written")

        t0 = time.perf_counter()
        bag = build(rdr, todo, the_plan.schema, out, storage=storage, on_error=on_error)
        journal = Journal(out)
        try:
            cl = get_client()
            with monitor_run(cl, out, report=config.get("preprocess.performance-report")) as run_log:
                sums: list = []

                def hash_inputs() -> None:
                    # once the chunks have every thread: hashed first, the inputs held the
                    # first part back by their whole size over the workers' read rate
                    sums.extend(cl.map(file_sha256, [i.path for i in the_plan.inputs], pure=False))

                checksums = hash_inputs if config.get("preprocess.checksum", checksum) else None
                new = []
                if todo:
                    retried = int(config.get("preprocess.retries", retries))
                    futures = cl.compute(bag.to_delayed(), retries=retried)
                    new = _run(cl, futures, todo, journal=journal, on_error=on_error, progress=progress,
                               tail=checksums)  # fmt: skip
                elif checksums:
                    checksums()
                run_log.add_chunks(new)  # this run's chunks only: events/s of this run
                run_log.extra["resumed_chunks"] = len(done)
                results = list(done.values()) + new
                digests = cl.gather(sums)
        finally:
            journal.close()
    if digests:
        the_plan.inputs = [replace(i, sha256=d) for i, d in zip(the_plan.inputs, digests)]
    manifest = _manifest(rdr, settings, storage, the_plan, results, time.perf_counter() - t0)
    manifest.write(out)
    if progress:
        n_fail = len(manifest.failed)
        print(
            f"nudask: wrote {manifest.events} events in {len(manifest.files)} files to {out}"
            + (f"; {n_fail} failed (see {MANIFEST})" if n_fail else ""),
            flush=True,
        )
    return _opened(out)


def _opened(out: str) -> Dataset:
    """The dataset written at ``out``; the reading side (pandas) is imported only now."""
    from .dataset import open_dataset

    return open_dataset(out)


def _manifest_matches(out: str, done: dict[tuple[Chunk, ...], ChunkResult]) -> bool:
    """Whether the manifest at ``out`` lists exactly the verified parts of ``done``."""
    try:
        listed = {(p.name, p.bytes, p.sha256) for p in Manifest.read(out).files}
    except DatasetError:
        return False
    return listed == {(r.part.name, r.part.bytes, r.part.sha256) for r in done.values() if r.part}


def _manifest(
    rdr: Reader, settings: dict, storage: dict, the_plan: Plan, results: list[ChunkResult], seconds: float
) -> Manifest:
    from .schema import schema_info

    files = sorted((r.part for r in results if r.part is not None), key=lambda p: p.name)
    failed = (
        the_plan.failed
        + [Failure(c.path, r.error, c.start, c.stop) for r in results if r.error for c in r.chunks]
        + [f for r in results for f in r.failed]
    )
    return Manifest(
        reader=rdr.name,
        reader_options=rdr.options(),
        settings={**settings, **storage},
        inputs=the_plan.inputs,
        files=files,
        failed=failed,
        roles=rdr.roles().to_json(),
        views=schema_info(the_plan.schema).get("views", {}) if the_plan.schema is not None else {},
        run={
            "seconds": round(seconds, 3),
            "chunks": len(results),
            "workers": sorted({r.worker for r in results if r.worker}),
        },
    )
