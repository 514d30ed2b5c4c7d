"""Concept familiarity kept between requests and processes: one SQLite file per model.

A concept's familiarity depends on the model and the scoring method, not on the question, so a score
computed once serves every later question that names the concept: in memory for this process, and in
a SQLite file that every worker of ``gate serve --workers N`` (and later runs) share. SQLite rather than
a JSON file because several processes write to it at once; WAL mode lets readers run while one writes.

What is stored: the concept text (a name or term taken from a question), the method and the score. The
file is bounded (``max_entries``; the least recently written go first) and can be turned off with
``familiarity_cache: off`` where question fragments must not reach the disk.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

logger = logging.getLogger(__name__)

_MEMORY_ENTRIES = 10_000


class MemoryConceptCache:
    """An in-process LRU of concept scores (the front of :class:`SqliteConceptCache`, or alone)."""

    def __init__(self, max_entries: int = _MEMORY_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._scores: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> float | None:
        """The score kept under ``key``, or ``None``."""
        with self._lock:
            score = self._scores.get(key)
            if score is not None:
                self._scores.move_to_end(key)
            return score

    def put(self, key: str, score: float) -> None:
        """Keep ``score``; the least recently used entry goes when the cache is full."""
        with self._lock:
            self._scores[key] = float(score)
            self._scores.move_to_end(key)
            while len(self._scores) > self.max_entries:
                self._scores.popitem(last=False)


class SqliteConceptCache:
    """Concept scores of one model in a SQLite file shared by processes, with an in-memory front.

    A failing file (full disk, permissions, a corrupt database) never fails a request: the error is
    logged once and the cache goes on in memory only.
    """

    def __init__(self, path: Path, *, model: str, max_entries: int = 200_000) -> None:
        self.path = path
        self.model = model
        self.max_entries = max_entries
        self._memory = MemoryConceptCache()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def get(self, key: str) -> float | None:
        """The score from memory, else from the file (then kept in memory), else ``None``."""
        score = self._memory.get(key)
        if score is not None:
            return score
        row = self._query("SELECT score FROM concepts WHERE model = ? AND key = ?", (self.model, key))
        if row is None:
            return None
        self._memory.put(key, row[0])
        return float(row[0])

    def put(self, key: str, score: float) -> None:
        """Keep ``score`` in memory and in the file; trims the file to ``max_entries`` now and then."""
        self._memory.put(key, score)
        self._execute(
            "INSERT OR REPLACE INTO concepts (model, key, score, written) VALUES (?, ?, ?, ?)",
            (self.model, key, float(score), time.time()),
        )
        if _trim_now(key):
            self._execute(
                "DELETE FROM concepts WHERE rowid IN "
                "(SELECT rowid FROM concepts ORDER BY written DESC LIMIT -1 OFFSET ?)",
                (self.max_entries,),
            )

    def close(self) -> None:
        """Close the file (the memory front stays usable)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS concepts "
                "(model TEXT NOT NULL, key TEXT NOT NULL, score REAL NOT NULL, written REAL NOT NULL, "
                "PRIMARY KEY (model, key))"
            )
            self._db = db
        return self._db

    def _query(self, sql: str, params: tuple[object, ...]) -> tuple[float] | None:
        with self._lock:
            try:
                db = self._connection()
                return None if db is None else db.execute(sql, params).fetchone()
            except (sqlite3.Error, OSError) as exc:
                self._give_up(exc)
                return None

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            try:
                db = self._connection()
                if db is not None:
                    db.execute(sql, params)
            except (sqlite3.Error, OSError) as exc:
                self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        self._broken = True
        logger.warning("familiarity cache %s unusable (%s); concept scores are kept in memory only", self.path, exc)


def default_cache_path(cache_dir: Path) -> Path:
    """Where the shared familiarity file lives by default."""
    return cache_dir / "familiarity.sqlite"


def _trim_now(key: str) -> bool:
    """About one write in 256 trims the file; deterministic per key, so no random state is needed."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[0] == 0
