"""Durable node state in SQLite (WAL): model versions, the reputation table, bans and round state.

Every write is one transaction, committed with `synchronous=FULL`, so a node killed at any moment
(SIGKILL, power loss) restarts from a consistent database holding every model it committed. A
restarted node resumes from the newest *verified* model (INV-7). The database lives in the node's
data directory; `Store.open` creates it, checks its integrity and its schema version.

Tables: `models` (id, gene, round, verified, stored_at), `peers` (did, score, banned, last_seen),
`state` (key, value: small JSON values such as the round and the regime).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import QresFormatError

SCHEMA_VERSION = 1
DB_NAME = "node.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    gene BLOB NOT NULL,
    round INTEGER NOT NULL,
    verified INTEGER NOT NULL,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS models_by_round ON models (verified, round);
CREATE TABLE IF NOT EXISTS peers (
    did TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    banned INTEGER NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PUT_MODEL = ("INSERT INTO models (id, gene, round, verified, stored_at) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (id) DO UPDATE SET verified = MAX(verified, excluded.verified)")
_PUT_PEER = ("INSERT INTO peers (did, score, banned, last_seen) VALUES (?, ?, ?, ?) "
             "ON CONFLICT (did) DO UPDATE SET score = excluded.score, banned = excluded.banned, last_seen = excluded.last_seen")
_PUT_STATE = "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


@dataclass(frozen=True)
class StoredModel:
    """A model version as stored: its id, gene bytes, the round it was made in and whether verified."""

    id: str
    gene: bytes
    round: int
    verified: bool


@dataclass(frozen=True)
class PeerRecord:
    """What a node keeps of a peer: reputation (Q16.16), ban flag, last time seen (s since the epoch)."""

    did: str
    score: int
    banned: bool
    last_seen: float


class Store:
    """One node's database. Use as a context manager, or call `close()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, data_dir: str | Path, any_thread: bool = False) -> Store:
        """Open (creating if needed) the database in `data_dir`; QresFormatError if it is not a
        QRES node database, is of another schema version, or fails SQLite's integrity check.
        `any_thread`: the caller may use it from another thread than this one (one at a time)."""
        path = Path(data_dir) / DB_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=not any_thread)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise QresFormatError(f"{path}: SQLite integrity check failed: {ok}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise QresFormatError(f"{path}: schema version {version}, this node reads {SCHEMA_VERSION}")
            if version == 0:  # a new database (every statement is idempotent, so a crash here is harmless)
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise QresFormatError(f"{path}: not a QRES node database ({exc})") from None
        except QresFormatError:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- a whole round -----------------------------------------------------------------------
    def save_round(self, peers: list[PeerRecord], values: dict, model: StoredModel | None = None) -> None:
        """Commit what one closed round changed in one transaction (one fsync): its model if it
        made one, the peer table rows, and small state values (JSON-serialisable)."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if model is not None:
                self._conn.execute(_PUT_MODEL, (model.id, bytes(model.gene), int(model.round), int(model.verified), time.time()))
            self._conn.executemany(_PUT_PEER, [(p.did, int(p.score), int(p.banned), float(p.last_seen)) for p in peers])
            self._conn.executemany(_PUT_STATE, [(k, json.dumps(v)) for k, v in values.items()])

    # -- models ------------------------------------------------------------------------------
    def save_model(self, model_id: str, gene: bytes, round_: int, verified: bool) -> None:
        """Commit a model version (idempotent for the same id; a later verification sticks)."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(_PUT_MODEL, (model_id, bytes(gene), int(round_), int(bool(verified)), time.time()))

    def latest_verified(self) -> StoredModel | None:
        """The verified model of the highest round (the newest stored among equals), or None."""
        row = self._conn.execute(
            "SELECT id, gene, round, verified FROM models WHERE verified = 1 ORDER BY round DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return None if row is None else StoredModel(row[0], bytes(row[1]), row[2], bool(row[3]))

    def model(self, model_id: str) -> StoredModel | None:
        row = self._conn.execute("SELECT id, gene, round, verified FROM models WHERE id = ?", (model_id,)).fetchone()
        return None if row is None else StoredModel(row[0], bytes(row[1]), row[2], bool(row[3]))

    def model_ids(self) -> list[str]:
        """Every stored model id, oldest first."""
        return [r[0] for r in self._conn.execute("SELECT id FROM models ORDER BY rowid")]

    # -- peers -------------------------------------------------------------------------------
    def peers(self) -> list[PeerRecord]:
        return [PeerRecord(r[0], r[1], bool(r[2]), r[3]) for r in self._conn.execute("SELECT did, score, banned, last_seen FROM peers ORDER BY did")]

    def banned(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT did FROM peers WHERE banned = 1")}

    # -- small state -------------------------------------------------------------------------
    def put(self, key: str, value) -> None:
        """Store a JSON-serialisable value under `key`."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(_PUT_STATE, (key, json.dumps(value)))

    def get(self, key: str, default=None):
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])
