"""Typed records a run leaves behind, each with one JSON form.

:class:`ChunkResult` is what one task hands back (a journal line),
:class:`PartFile` one Parquet file of a dataset, :class:`InputFile` one input
and :class:`Manifest` the ``_manifest.json`` of a finished dataset. Pipeline,
resume, monitor, train and describe read these, never the raw dicts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import DatasetError, DatasetNotFoundError, output_error
from .events import Chunk

MANIFEST = "_manifest.json"  # "_" prefix: Parquet readers skip it
FORMAT = "nudask-dataset"


def _chunk(d: dict) -> Chunk:
    return Chunk(d["path"], d["reader"], int(d["start"]), int(d["stop"]))


@dataclass(frozen=True)
class PartFile:
    """One Parquet file of a dataset and the input events it holds, in row order."""

    name: str
    rows: int
    bytes: int
    sha256: str
    chunks: tuple[Chunk, ...] = ()
    footer_sha256: str | None = None  # checked whenever the part is opened

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(c.path for c in self.chunks))

    def to_json(self) -> dict:
        return {
            "name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
            "chunks": [asdict(c) for c in self.chunks],
            **({"footer_sha256": self.footer_sha256} if self.footer_sha256 else {}),
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict, reader: str = "") -> PartFile:
        if "chunks" in d:
            chunks = tuple(_chunk(c) for c in d["chunks"])
        elif "source" in d:  # schema v1 manifests: one chunk per file
            chunks = (Chunk(d["source"], reader, int(d["start"]), int(d["stop"])),)
        else:
            chunks = ()
        return cls(d["name"], int(d["rows"]), int(d["bytes"]), d["sha256"], chunks, d.get("footer_sha256"))


@dataclass(frozen=True)
class Failure:
    """An input, or events of one, that could not be used, and why."""

    path: str
    error: str
    start: int | None = None
    stop: int | None = None

    @property
    def events(self) -> int:
        return 0 if self.start is None or self.stop is None else self.stop - self.start

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: dict) -> Failure:
        return cls(d["path"], d["error"], d.get("start"), d.get("stop"))


@dataclass(frozen=True)
class ChunkResult:
    """What one task did: the chunks it read and the part it wrote, or its error."""

    chunks: tuple[Chunk, ...]
    part: PartFile | None = None
    seconds: float = 0.0
    worker: str = ""
    error: str | None = None  # the whole task failed
    failed: tuple[Failure, ...] = ()  # chunks of the task that could not be read (on_error="skip")

    @property
    def events(self) -> int:
        return self.part.rows if self.part is not None else 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.part is not None

    def to_json(self) -> dict:
        return {
            "chunks": [asdict(c) for c in self.chunks],
            "part": self.part.to_json() if self.part else None,
            "seconds": self.seconds, "worker": self.worker, "error": self.error,
            "failed": [f.to_json() for f in self.failed],
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> ChunkResult:
        part = PartFile.from_json(d["part"]) if d.get("part") else None
        return cls(
            tuple(_chunk(c) for c in d["chunks"]), part, float(d.get("seconds", 0.0)),
            d.get("worker", ""), d.get("error"), tuple(Failure.from_json(f) for f in d.get("failed", [])),
        )  # fmt: skip


@dataclass(frozen=True)
class InputFile:
    """One input of a run: where, how big, how many events; its sha256 when computed."""

    path: str
    size: int
    events: int
    sha256: str | None = None
    mtime: float | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: dict) -> InputFile:
        return cls(d["path"], int(d["size"]), int(d["events"]), d.get("sha256"), d.get("mtime"))


@dataclass
class Manifest:
    """The ``_manifest.json`` of a dataset: what went in, what came out, how to read it."""

    reader: str
    reader_options: dict[str, Any]
    settings: dict[str, Any]
    inputs: list[InputFile]
    files: list[PartFile]
    failed: list[Failure] = field(default_factory=list)
    roles: dict[str, Any] = field(default_factory=dict)
    views: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    schema_version: int | None = None  # None: this nudask's
    nudask_version: str = ""
    created: str = ""

    def __post_init__(self):
        from . import __version__
        from .schema import SCHEMA_VERSION

        if self.schema_version is None:
            self.schema_version = SCHEMA_VERSION
        self.nudask_version = self.nudask_version or __version__
        self.created = self.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    @property
    def events(self) -> int:
        return sum(f.rows for f in self.files)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "schema_version": self.schema_version,
            "nudask_version": self.nudask_version, "created": self.created,
            "reader": self.reader, "reader_options": self.reader_options, "settings": self.settings,
            "events": self.events, "roles": self.roles, "views": self.views,
            "inputs": [i.to_json() for i in self.inputs], "files": [f.to_json() for f in self.files],
            "failed": [f.to_json() for f in self.failed], "run": self.run,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        reader = d.get("reader", "")
        return cls(
            reader=reader,
            reader_options=d.get("reader_options", {}),
            settings=d.get("settings", {}),
            inputs=[InputFile.from_json(i) for i in d.get("inputs", [])],
            files=[PartFile.from_json(f, reader) for f in d.get("files", [])],
            failed=[Failure.from_json(f) for f in d.get("failed", [])],
            roles=d.get("roles", {}),
            views=d.get("views", {}),
            run=d.get("run", {}),
            schema_version=int(d.get("schema_version", 0)),
            nudask_version=d.get("nudask_version", ""),
            created=d.get("created", ""),
        )

    def write(self, folder: str) -> str:
        """Write atomically into ``folder`` (the last file a run writes)."""
        path = os.path.join(folder, MANIFEST)
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.to_json(), f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except OSError as err:
            raise output_error(path, err) from None
        return path

    @classmethod
    def read(cls, folder: str) -> Manifest:
        path = os.path.join(folder, MANIFEST)
        if not os.path.isdir(folder):
            raise DatasetNotFoundError(f"no dataset at '{folder}'")
        if not os.path.exists(path):
            raise DatasetError(
                f"'{folder}' has no {MANIFEST}: not a nudask dataset, or its run did not finish "
                "(run nudask preprocess again to complete it)"
            )
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise DatasetError(f"cannot read '{path}' ({err})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DatasetError(f"'{path}' is not a nudask manifest")
        return cls.from_json(raw)
