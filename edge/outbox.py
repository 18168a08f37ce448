"""The gateway's on-disk queue of results waiting for the server (SQLite, one file in the state folder).

A result is written here before anything is sent, with the Idempotency-Key it will always be sent with, so a
server outage, a crash or a power cut between counting and delivery loses nothing and a retry never stores a
second copy. The files a folder source has taken are recorded in the same transaction as their result, so a
restart neither skips nor recounts a file. Delivered results are deleted; results the server refused as invalid
stay, marked rejected with its answer, for a person to look at.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    fields TEXT NOT NULL,
    file_field TEXT NOT NULL,
    file_name TEXT NOT NULL,
    payload BLOB NOT NULL,
    captured_at TEXT NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    rejected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS taken_files (path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tallies (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Outgoing:
    """One request to the server: form fields and one file, posted to `endpoint` (a path under /api/v1/)."""

    endpoint: str
    fields: dict[str, str]
    file_field: str
    file_name: str
    payload: bytes
    captured_at: str


@dataclass(frozen=True)
class Queued:
    id: int
    idempotency_key: str
    outgoing: Outgoing
    attempts: int


@dataclass(frozen=True)
class TakenFile:
    """A source file a result came from: recorded with the result, so it is taken once."""

    path: str
    mtime_ns: int
    size: int


class Outbox:
    """Opened by each thread that uses it (SQLite connections stay in their thread)."""

    def __init__(self, path: str | Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit off, explicit transactions; WAL so the counting and the sending threads do not block each other.
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a result acknowledged as queued survives a power cut
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def put(self, outgoing: Outgoing, taken: TakenFile | None = None) -> str:
        """Queue a result (and record the file it came from); returns its Idempotency-Key."""
        key = str(uuid.uuid4())
        with self._transaction():
            self.db.execute(
                "INSERT INTO outbox (idempotency_key, endpoint, fields, file_field, file_name, payload, captured_at,"
                " queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    outgoing.endpoint,
                    json.dumps(outgoing.fields),
                    outgoing.file_field,
                    outgoing.file_name,
                    outgoing.payload,
                    outgoing.captured_at,
                    time.time(),
                ),
            )
            if taken is not None:
                self._record_taken(taken)
            self._drop_oldest_beyond_limit()
        return key

    def record_taken(self, taken: TakenFile) -> None:
        """A file that gave no result (unreadable): taken all the same, so it is not retried forever."""
        with self._transaction():
            self._record_taken(taken)

    def was_taken(self, path: str, mtime_ns: int, size: int) -> bool:
        row = self.db.execute("SELECT mtime_ns, size FROM taken_files WHERE path = ?", (path,)).fetchone()
        # A file written again under the same name is a new frame.
        return row is not None and tuple(row) == (mtime_ns, size)

    def next_due(self) -> Queued | None:
        """The oldest result not yet delivered nor rejected."""
        row = self.db.execute(
            "SELECT id, idempotency_key, endpoint, fields, file_field, file_name, payload, captured_at, attempts"
            " FROM outbox WHERE rejected = 0 ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        id_, key, endpoint, fields, file_field, file_name, payload, captured_at, attempts = row
        outgoing = Outgoing(endpoint, json.loads(fields), file_field, file_name, payload, captured_at)
        return Queued(id_, key, outgoing, attempts)

    def delivered(self, item: Queued) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            self._add_to_tally("delivered", 1)

    def failed_attempt(self, item: Queued, error: str) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, item.id))

    def rejected(self, item: Queued, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, rejected = 1 WHERE id = ?", (error, item.id)
        )

    def stats(self) -> dict[str, object]:
        queued, queued_bytes, oldest = self.db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), min(captured_at) FROM outbox WHERE rejected = 0"
        ).fetchone()
        (rejected,) = self.db.execute("SELECT count(*) FROM outbox WHERE rejected = 1").fetchone()
        tallies = dict(self.db.execute("SELECT name, value FROM tallies").fetchall())
        return {
            "queue_length": queued,
            "queue_bytes": queued_bytes,
            "oldest_queued_captured_at": oldest,
            "rejected": rejected,
            "delivered": tallies.get("delivered", 0),
            "dropped": tallies.get("dropped", 0),
        }

    def rejected_items(self) -> list[tuple[str, str, str]]:
        """(Idempotency-Key, captured_at, the server's answer) of each result the server refused."""
        return self.db.execute(
            "SELECT idempotency_key, captured_at, last_error FROM outbox WHERE rejected = 1 ORDER BY id"
        ).fetchall()

    def _record_taken(self, taken: TakenFile) -> None:
        self.db.execute(
            "INSERT INTO taken_files (path, mtime_ns, size) VALUES (?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET mtime_ns = excluded.mtime_ns, size = excluded.size",
            (taken.path, taken.mtime_ns, taken.size),
        )

    def _drop_oldest_beyond_limit(self) -> None:
        """A gateway's disk is small: past `max_bytes`, the oldest results go first (and are counted as dropped),
        so the newest, which an operator needs most, keep arriving."""
        if self.max_bytes is None:
            return
        rows = self.db.execute("SELECT id, length(payload) FROM outbox WHERE rejected = 0 ORDER BY id").fetchall()
        total = sum(size for _, size in rows)
        dropped = 0
        for id_, size in rows[:-1]:  # the result just queued always stays
            if total <= self.max_bytes:
                break
            self.db.execute("DELETE FROM outbox WHERE id = ?", (id_,))
            total -= size
            dropped += 1
        if dropped:
            self._add_to_tally("dropped", dropped)

    def _add_to_tally(self, name: str, amount: int) -> None:
        self.db.execute(
            "INSERT INTO tallies (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ?",
            (name, amount, amount),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
