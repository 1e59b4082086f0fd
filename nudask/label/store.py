"""The labels of a dataset: an SQLite database beside it (``DATASET/_labels.sqlite``).

WAL mode, a busy timeout, one connection per call and every write in one
``BEGIN IMMEDIATE`` transaction (it takes the database's write lock before it
reads), so annotators saving at the same moment (threads of the server, or
several server processes on one database file) wait for each other instead of
losing a label, and the check "this event has fewer than k labels" and the
insert that follows it are one step: no event gets past k however many save
at once. The (event, annotator) primary key makes a second save by one
annotator an update, never a second row. Events are keyed by the dataset's
identity columns (``run/subrun/event`` by default), so the labels survive a
re-preprocessing that reorders rows.

Tables: ``labels(key, annotator, class, at)`` (one label per annotator and
event: saving again replaces it) and ``settled(key, class, annotator, at)``
(the final label of an event the annotators disagreed on).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import DataError

DB_NAME = "_labels.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    key TEXT NOT NULL,
    annotator TEXT NOT NULL,
    class TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (key, annotator)
);
CREATE INDEX IF NOT EXISTS labels_by_annotator ON labels (annotator);
CREATE TABLE IF NOT EXISTS settled (
    key TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    annotator TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class EventComplete(DataError):
    """A save refused: the event already has its ``k`` labels, none of them by this annotator."""

    def __init__(self, key: str, k: int, annotators: list[str]):
        super().__init__(
            f"event {key} already has its {k} label{'s' if k != 1 else ''} "
            f"(by {', '.join(annotators)}): yours was not saved; go on to the next event"
        )
        self.key, self.k, self.annotators = key, k, annotators


class EventSettled(EventComplete):
    """A save refused: the event was settled (its final label decided in the QA page)."""

    def __init__(self, key: str, label: str, by: str):
        DataError.__init__(
            self, f"event {key} was settled as {label} by {by}: yours was not saved; go on to the next event"
        )
        self.key, self.label, self.by = key, label, by


class LabelStore:
    """The labels database at ``path`` (created with its tables when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0):
        self.path = os.fspath(path)
        self.timeout = timeout
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def beside(cls, dataset: str | os.PathLike[str]) -> LabelStore:
        return cls(os.path.join(os.fspath(dataset), DB_NAME))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken at once (IMMEDIATE), committed whole or rolled back."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def save(self, key: str, annotator: str, label: str, *, k: int | None = None) -> bool:
        """Record ``annotator``'s label of event ``key``, replacing theirs if any (True when it
        is a new label, False when it replaced one). With ``k``, a new label of an event that
        already has ``k`` labels is refused (:class:`EventComplete`), and any label of a settled
        event (:class:`EventSettled`), checked and inserted in one transaction."""
        with self._write() as db:
            settled = db.execute("SELECT class, annotator FROM settled WHERE key = ?", (key,)).fetchone()
            if settled is not None and k is not None:
                raise EventSettled(key, *settled)
            mine = db.execute(
                "SELECT 1 FROM labels WHERE key = ? AND annotator = ?", (key, annotator)
            ).fetchone()
            if mine is None and k is not None:
                others = [
                    a
                    for (a,) in db.execute(
                        "SELECT annotator FROM labels WHERE key = ? ORDER BY rowid", (key,)
                    )
                ]
                if len(others) >= k:
                    raise EventComplete(key, k, others)
            db.execute(
                "INSERT INTO labels (key, annotator, class, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key, annotator) DO UPDATE SET class = excluded.class, at = excluded.at",
                (key, annotator, label, time.time()),
            )
        return mine is None

    def settle(self, key: str, annotator: str, label: str) -> None:
        """Record the final label of event ``key``, decided by ``annotator``."""
        with self._write() as db:
            db.execute(
                "INSERT INTO settled (key, class, annotator, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET class = excluded.class, "
                "annotator = excluded.annotator, at = excluded.at",
                (key, label, annotator, time.time()),
            )

    def labels(self) -> list[tuple[str, str, str]]:
        """Every label as ``(key, annotator, class)``, in the order they were first saved."""
        with self._connect() as db:
            return db.execute("SELECT key, annotator, class FROM labels ORDER BY rowid").fetchall()

    def settled(self) -> dict[str, tuple[str, str]]:
        """Settled events: key -> (class, annotator)."""
        with self._connect() as db:
            rows = db.execute("SELECT key, class, annotator FROM settled").fetchall()
        return {k: (c, a) for k, c, a in rows}

    def counts(self) -> dict[str, int]:
        """Labels per event key."""
        with self._connect() as db:
            return dict(db.execute("SELECT key, COUNT(*) FROM labels GROUP BY key").fetchall())

    def done_by(self, annotator: str) -> set[str]:
        """The keys of the events ``annotator`` labelled."""
        with self._connect() as db:
            rows = db.execute("SELECT key FROM labels WHERE annotator = ?", (annotator,)).fetchall()
        return {k for (k,) in rows}
