"""Resumable runs: the run's settings and a journal of finished chunks.

``_run.json`` pins what a dataset folder is being written with; a rerun with
the same settings resumes (only chunks without a verified part file run
again), one with other settings is refused unless the user overwrites.
``_journal.jsonl`` gets one line per finished chunk as results arrive, so a
run killed at any point loses at most the chunks in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil

from .dataset.manifest import MANIFEST, part_name
from .dataset.write import file_sha256
from .errors import OutputExistsError, output_error
from .events import Chunk
from .lock import LOCK
from .records import ChunkResult, InputFile, Manifest

RUN_FILE = "_run.json"
JOURNAL = "_journal.jsonl"
INPUTS = "_inputs.json"  # size, mtime (sha256 once computed) of each input of the run


def _is_nudask_file(name: str) -> bool:
    return name.startswith(("part-", "_", ".part-"))


def prepare_output(out: str, spec: dict, *, overwrite: bool) -> bool:
    """Make ``out`` ready for a run with ``spec``; True if an earlier run can be resumed."""
    names = [n for n in (os.listdir(out) if os.path.isdir(out) else []) if n != LOCK]
    if names and not all(_is_nudask_file(n) for n in names):
        raise OutputExistsError(
            f"output '{out}' holds files that are not nudask's ({sorted(names)[:3]}...): "
            "not a nudask dataset; refusing to write into it"
        )
    previous = None
    if RUN_FILE in names:
        with open(os.path.join(out, RUN_FILE)) as f:
            previous = json.load(f)
    elif names:
        previous = {}
    if previous is not None and not overwrite and previous != spec:
        changed = sorted(k for k in set(spec) | set(previous) if spec.get(k) != previous.get(k))
        raise OutputExistsError(
            f"output '{out}' was written with other settings (changed: {', '.join(changed)}); "
            "pass overwrite=True (--overwrite) to replace it, or choose another --out"
        )
    if overwrite and names:  # under the run's lock; the manifest first, so none names missing parts
        if MANIFEST in names:
            os.remove(os.path.join(out, MANIFEST))
        for name in names:
            path = os.path.join(out, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
        previous = None
    os.makedirs(out, exist_ok=True)
    clean_temporary(out)  # files of writes cut short by a kill
    if previous != spec:
        with open(os.path.join(out, RUN_FILE), "w") as f:
            json.dump(spec, f, indent=1)
    return previous is not None


def clean_temporary(out: str) -> None:
    """Remove the temporary files of writes that did not finish (``.part-*.tmp``, ``*.tmp``)."""
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))


def finished_chunks(out: str, tasks: list[tuple[Chunk, ...]]) -> dict[tuple[Chunk, ...], ChunkResult]:
    """Results of ``tasks`` whose part file is there, whole, with the journal's checksum."""
    wanted = {part_name(t): t for t in tasks}
    done: dict[tuple[Chunk, ...], ChunkResult] = {}
    path = os.path.join(out, JOURNAL)
    if not os.path.exists(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                result = ChunkResult.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError):  # the last line of a killed run
                continue
            part = result.part
            task = wanted.get(part.name) if part else None
            if part is None or task is None or result.failed or part.rows != sum(map(len, task)):
                continue
            file = os.path.join(out, part.name)
            if (
                os.path.exists(file)
                and os.path.getsize(file) == part.bytes
                and file_sha256(file) == part.sha256
            ):
                done[task] = result
    return done


class Journal:
    """Append-only record of finished tasks (one JSON line each, flushed)."""

    def __init__(self, out: str):
        self.path = os.path.join(out, JOURNAL)
        try:
            self._f = open(self.path, "a")
        except OSError as err:
            raise output_error(self.path, err) from None

    def add(self, result: ChunkResult) -> None:
        try:
            self._f.write(json.dumps(result.to_json()) + "\n")
            self._f.flush()
        except OSError as err:
            raise output_error(self.path, err) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a failed flush was reported by add
            self._f.close()


def is_complete(out: str) -> bool:
    return os.path.exists(os.path.join(out, MANIFEST))


def _recorded_inputs(out: str) -> dict[str, InputFile]:
    """The inputs an earlier run of ``out`` saw: its manifest's (with sha256), else ``_inputs.json``."""
    recorded: dict[str, InputFile] = {}
    path = os.path.join(out, INPUTS)
    if os.path.exists(path):
        with open(path) as f:
            recorded = {i.path: i for i in map(InputFile.from_json, json.load(f))}
    if is_complete(out):
        try:
            recorded.update({i.path: i for i in Manifest.read(out).inputs})
        except ValueError:
            pass
    return recorded


def changed_inputs(out: str, inputs: list[InputFile]) -> dict[str, str]:
    """Inputs whose size, mtime or (when recorded) sha256 differ from an earlier run's: path -> how."""
    recorded = _recorded_inputs(out)
    changed = {}
    for now in inputs:
        before = recorded.get(now.path)
        if before is None:
            continue
        if before.size != now.size:
            changed[now.path] = f"size {before.size} -> {now.size} bytes"
        elif before.mtime is not None and now.mtime is not None and before.mtime != now.mtime:
            changed[now.path] = f"modified since (mtime {before.mtime} -> {now.mtime})"
        elif before.sha256 is not None and file_sha256(now.path) != before.sha256:
            changed[now.path] = "sha256 differs"
    return changed


def record_inputs(out: str, inputs: list[InputFile]) -> None:
    """Save what this run sees of its inputs (atomically), for the next run to compare."""
    path = os.path.join(out, INPUTS)
    records = [i.to_json() for i in inputs]
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) == records:
                return
    with open(f"{path}.tmp", "w") as f:
        json.dump(records, f, indent=1)
    os.replace(f"{path}.tmp", path)
