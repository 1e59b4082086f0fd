"""The labels of a dataset: an SQLite database beside it (``DATASET/_labels.sqlite``).

WAL mode, one connection per call and every write in one ``BEGIN IMMEDIATE``
transaction, so annotators saving at the same moment (threads of the server,
or several servers on one dataset) wait for each other instead of losing a
label. Events are keyed by the dataset's identity columns (``run/subrun/event``
by default), so the labels survive a re-preprocessing that reorders rows.

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

    def save(self, key: str, annotator: str, label: str) -> None:
        """Record ``annotator``'s label of event ``key`` (replacing theirs, if any)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO labels (key, annotator, class, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key, annotator) DO UPDATE SET class = excluded.class, at = excluded.at",
                (key, annotator, label, time.time()),
            )

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
