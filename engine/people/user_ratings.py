"""Ratings people enter in the app, kept in an embedded SQLite database (WAL mode).

Each committed write is durable before the call returns (``synchronous=FULL``),
so ratings survive restarts and a writer killed with ``kill -9``. Profiles get a
stable numeric user id (:data:`USER_ID_OFFSET` + row id) so that ``train`` can
include them beside the MovieLens users without clashing.

One :class:`RatingStore` may serve many threads (the app's sessions): each thread
gets its own connection, and every write is one short ``BEGIN IMMEDIATE``
transaction, so concurrent writers (threads or processes) queue instead of
mixing their statements into one another's transactions.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..data.movielens import ITEM, MAX_RATING, MIN_RATING, RATING, USER

USER_ID_OFFSET = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    movie_id INTEGER NOT NULL,
    rating REAL NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    updated_at REAL NOT NULL,
    PRIMARY KEY (profile_id, movie_id)
);
CREATE TABLE IF NOT EXISTS hidden (
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    movie_id INTEGER NOT NULL,
    hidden_at REAL NOT NULL,
    PRIMARY KEY (profile_id, movie_id)
);
"""

_UPSERT = (
    "INSERT INTO ratings(profile_id, movie_id, rating, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(profile_id, movie_id) DO UPDATE SET rating = excluded.rating, "
    "updated_at = excluded.updated_at"
)


#: Seconds a write waits for another program's write to finish before giving up.
LOCK_TIMEOUT_S = 30.0


class RatingStoreError(ValueError):
    """The ratings database cannot be used (locked, not a database, unwritable): the message
    names the file and what to do."""


def _name(profile: str) -> str:
    name = (profile or "").strip()
    if not name:
        raise ValueError("Profile name is empty: type a name to keep your ratings under.")
    return name


def _checked(rating, what: str = "") -> float:
    r = float(rating)
    if not (MIN_RATING <= r <= MAX_RATING) or (r * 2) % 1:
        raise ValueError(f"Rating {rating!r}{what} is off the scale: use {MIN_RATING}-{MAX_RATING} in half stars.")
    return r


class RatingStore:
    """Per-profile movie ratings. Safe to share between threads (one connection per thread).

    >>> store = RatingStore("/tmp/ratings.sqlite")   # doctest: +SKIP
    >>> store.set_rating("me", 1, 4.5)                # doctest: +SKIP
    """

    def __init__(self, path: str | Path, lock_timeout: float = LOCK_TIMEOUT_S):
        self.path = Path(path)
        self.lock_timeout = float(lock_timeout)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RatingStoreError(
                f"Cannot create the folder of the ratings database {self.path} "
                f"({exc.strerror or exc}): set RATINGS_DB to a file in a writable "
                "folder."
            ) from exc
        self._local.db = self._connect()  # now: a bad file is reported here, not on first use

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (a connection is never shared by threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _connect(self) -> sqlite3.Connection:
        with self._explained():
            db = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None)
            try:
                self._wal(db)
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                tables = db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                    "AND name IN ('profiles', 'ratings', 'hidden')"
                ).fetchone()[0]
                if tables < 3:  # a new file (CREATE ... IF NOT EXISTS: another process may be at it too)
                    db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
        return db

    def _wal(self, db: sqlite3.Connection) -> None:
        """Put the file in WAL mode. Two processes doing so to a new file at once: SQLite answers
        "locked" at once, without its busy wait, so the wait (up to the lock timeout) is here."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        """Close this thread's connection (another thread's closes when that thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            self._local.db = None
            db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def _explained(self):
        """SQLite's terse errors about the file itself, as a :class:`RatingStoreError` that says what to do."""
        try:
            yield
        except sqlite3.DatabaseError as exc:  # OperationalError is one
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            text = str(exc).lower()
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
                raise RatingStoreError(
                    f"The ratings database {self.path} is locked by another program (waited "
                    f"{self.lock_timeout:g} s): nothing was saved. Try again in a moment; if it stays "
                    "locked, close the program that holds it."
                ) from exc
            if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or "not a database" in text:
                raise RatingStoreError(
                    f"{self.path} is not a SQLite database, or it is damaged ({exc}): move the file "
                    "away (a new, empty one is made in its place) or set RATINGS_DB to another "
                    "file."
                ) from exc
            if code in (
                sqlite3.SQLITE_CANTOPEN,
                sqlite3.SQLITE_READONLY,
                sqlite3.SQLITE_PERM,
                sqlite3.SQLITE_FULL,
                sqlite3.SQLITE_IOERR,
            ):
                raise RatingStoreError(
                    f"Cannot write the ratings database {self.path} ({exc}): check that the disk has "
                    "room and the file and its folder are writable, or set RATINGS_DB to another "
                    "file."
                ) from exc
            raise

    @contextmanager
    def _write(self):
        """One short write transaction: committed when the block ends, or (on any error) nothing."""
        db = self._db
        with self._explained():
            db.execute("BEGIN IMMEDIATE")  # the write lock first: waits for other writers, never deadlocks
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._explained():
            return self._db.execute(sql, params).fetchall()

    @staticmethod
    def _profile_id(db: sqlite3.Connection, name: str) -> int:
        """The profile's id, creating it if new (inside the caller's write transaction)."""
        db.execute(
            "INSERT INTO profiles(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, time.time())
        )
        return db.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()[0]

    def profiles(self) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM profiles ORDER BY name")]

    def user_id(self, name: str) -> int | None:
        row = self._read("SELECT id FROM profiles WHERE name = ?", (_name(name),))
        return USER_ID_OFFSET + row[0][0] if row else None

    def set_rating(self, profile: str, movie_id: int, rating: float) -> None:
        """Insert or update one rating, creating the profile if new (committed when this returns)."""
        name, r = _name(profile), _checked(rating)
        with self._write() as db:
            db.execute(_UPSERT, (self._profile_id(db, name), int(movie_id), r, time.time()))

    def import_ratings(self, profile: str, pairs: list[tuple[int, float]], replace: bool = False) -> dict[str, int]:
        """Add many ratings in one transaction: all of them or, on any error, none.

        A movie the profile already rated keeps its rating unless ``replace``.
        Returns how many were ``added``, ``replaced`` and ``kept``.
        """
        name = _name(profile)
        values = [(int(movie_id), _checked(rating, f" for movie {movie_id}")) for movie_id, rating in pairs]
        counts = {"added": 0, "replaced": 0, "kept": 0}
        with self._write() as db:
            pid = self._profile_id(db, name)
            had = {m for (m,) in db.execute("SELECT movie_id FROM ratings WHERE profile_id = ?", (pid,))}
            now = time.time()
            for movie_id, r in values:
                if movie_id in had and not replace:
                    counts["kept"] += 1
                    continue
                counts["replaced" if movie_id in had else "added"] += 1
                db.execute(_UPSERT, (pid, movie_id, r, now))
                now += 1e-6  # keeps the file's order in ratings(), which sorts by time
        return counts

    def remove_rating(self, profile: str, movie_id: int) -> bool:
        name = _name(profile)
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM ratings WHERE movie_id = ? AND profile_id = (SELECT id FROM profiles WHERE name = ?)",
                (int(movie_id), name),
            )
        return cur.rowcount > 0

    def ratings(self, profile: str) -> list[tuple[int, float]]:
        """(movieId, rating) pairs of a profile, oldest first."""
        return [
            (int(m), float(r))
            for m, r in self._read(
                "SELECT r.movie_id, r.rating FROM ratings r JOIN profiles p ON p.id = r.profile_id "
                "WHERE p.name = ? ORDER BY r.updated_at, r.movie_id",
                (_name(profile),),
            )
        ]

    def hide(self, profile: str, movie_id: int) -> None:
        """ "Not interested": the movie stays out of this profile's suggestions until shown again."""
        name = _name(profile)
        with self._write() as db:
            db.execute(
                "INSERT INTO hidden(profile_id, movie_id, hidden_at) VALUES (?, ?, ?) "
                "ON CONFLICT(profile_id, movie_id) DO NOTHING",
                (self._profile_id(db, name), int(movie_id), time.time()),
            )

    def unhide(self, profile: str, movie_id: int) -> bool:
        name = _name(profile)
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM hidden WHERE movie_id = ? AND profile_id = (SELECT id FROM profiles WHERE name = ?)",
                (int(movie_id), name),
            )
        return cur.rowcount > 0

    def hidden(self, profile: str) -> list[int]:
        """The movies a profile marked "not interested", newest first."""
        return [
            int(m)
            for (m,) in self._read(
                "SELECT h.movie_id FROM hidden h JOIN profiles p ON p.id = h.profile_id "
                "WHERE p.name = ? ORDER BY h.hidden_at DESC, h.movie_id",
                (_name(profile),),
            )
        ]

    def all_ratings(self) -> pd.DataFrame:
        """Every stored rating as MovieLens columns, with the profiles' numeric user ids."""
        rows = self._read("SELECT profile_id, movie_id, rating FROM ratings")
        df = pd.DataFrame(rows, columns=[USER, ITEM, RATING])
        df[USER] = df[USER].astype("int64") + USER_ID_OFFSET
        return df
