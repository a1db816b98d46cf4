"""Ratings people enter in the app, kept in an embedded SQLite database (WAL mode).

Each committed write is durable before the call returns (``synchronous=FULL``),
so ratings survive restarts and a writer killed with ``kill -9``. Profiles get a
stable numeric user id (:data:`USER_ID_OFFSET` + row id) so that ``train`` can
include them beside the MovieLens users without clashing.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pandas as pd

from .movielens import ITEM, MAX_RATING, MIN_RATING, RATING, USER

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

_UPSERT = ("INSERT INTO ratings(profile_id, movie_id, rating, updated_at) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(profile_id, movie_id) DO UPDATE SET rating = excluded.rating, "
           "updated_at = excluded.updated_at")


def _checked(rating, what: str = "") -> float:
    r = float(rating)
    if not (MIN_RATING <= r <= MAX_RATING) or (r * 2) % 1:
        raise ValueError(f"Rating {rating!r}{what} is off the scale: use {MIN_RATING}-{MAX_RATING} in half stars.")
    return r


class RatingStore:
    """Per-profile movie ratings. Open one per thread/process; cheap to create.

    >>> store = RatingStore("/tmp/ratings.sqlite")   # doctest: +SKIP
    >>> store.set_rating("me", 1, 4.5)                # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _profile_id(self, name: str, create: bool) -> int | None:
        name = (name or "").strip()
        if not name:
            raise ValueError("Profile name is empty: type a name to keep your ratings under.")
        row = self._db.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()
        if row or not create:
            return row[0] if row else None
        cur = self._db.execute("INSERT INTO profiles(name, created_at) VALUES (?, ?)", (name, time.time()))
        return cur.lastrowid

    def profiles(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM profiles ORDER BY name")]

    def user_id(self, name: str) -> int | None:
        pid = self._profile_id(name, create=False)
        return None if pid is None else USER_ID_OFFSET + pid

    def set_rating(self, profile: str, movie_id: int, rating: float) -> None:
        """Insert or update one rating (committed when this returns)."""
        r = _checked(rating)
        pid = self._profile_id(profile, create=True)
        self._db.execute(_UPSERT, (pid, int(movie_id), r, time.time()))

    def import_ratings(self, profile: str, pairs: list[tuple[int, float]],
                       replace: bool = False) -> dict[str, int]:
        """Add many ratings in one transaction: all of them or, on any error, none.

        A movie the profile already rated keeps its rating unless ``replace``.
        Returns how many were ``added``, ``replaced`` and ``kept``.
        """
        values = [(int(movie_id), _checked(rating, f" for movie {movie_id}")) for movie_id, rating in pairs]
        counts = {"added": 0, "replaced": 0, "kept": 0}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            pid = self._profile_id(profile, create=True)
            had = {m: r for m, r in self._db.execute(
                "SELECT movie_id, rating FROM ratings WHERE profile_id = ?", (pid,))}
            now = time.time()
            for movie_id, r in values:
                if movie_id in had and not replace:
                    counts["kept"] += 1
                    continue
                counts["replaced" if movie_id in had else "added"] += 1
                self._db.execute(_UPSERT, (pid, movie_id, r, now))
                now += 1e-6   # keeps the file's order in ratings(), which sorts by time
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return counts

    def remove_rating(self, profile: str, movie_id: int) -> bool:
        pid = self._profile_id(profile, create=False)
        if pid is None:
            return False
        cur = self._db.execute("DELETE FROM ratings WHERE profile_id = ? AND movie_id = ?",
                               (pid, int(movie_id)))
        return cur.rowcount > 0

    def ratings(self, profile: str) -> list[tuple[int, float]]:
        """(movieId, rating) pairs of a profile, oldest first."""
        pid = self._profile_id(profile, create=False)
        if pid is None:
            return []
        return [(int(m), float(r)) for m, r in self._db.execute(
            "SELECT movie_id, rating FROM ratings WHERE profile_id = ? ORDER BY updated_at, movie_id",
            (pid,))]

    def hide(self, profile: str, movie_id: int) -> None:
        """"Not interested": the movie stays out of this profile's suggestions until shown again."""
        pid = self._profile_id(profile, create=True)
        self._db.execute("INSERT INTO hidden(profile_id, movie_id, hidden_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(profile_id, movie_id) DO NOTHING", (pid, int(movie_id), time.time()))

    def unhide(self, profile: str, movie_id: int) -> bool:
        pid = self._profile_id(profile, create=False)
        if pid is None:
            return False
        cur = self._db.execute("DELETE FROM hidden WHERE profile_id = ? AND movie_id = ?", (pid, int(movie_id)))
        return cur.rowcount > 0

    def hidden(self, profile: str) -> list[int]:
        """The movies a profile marked "not interested", newest first."""
        pid = self._profile_id(profile, create=False)
        if pid is None:
            return []
        return [int(m) for (m,) in self._db.execute(
            "SELECT movie_id FROM hidden WHERE profile_id = ? ORDER BY hidden_at DESC, movie_id", (pid,))]

    def all_ratings(self) -> pd.DataFrame:
        """Every stored rating as MovieLens columns, with the profiles' numeric user ids."""
        rows = self._db.execute("SELECT profile_id, movie_id, rating FROM ratings").fetchall()
        df = pd.DataFrame(rows, columns=[USER, ITEM, RATING])
        df[USER] = df[USER].astype("int64") + USER_ID_OFFSET
        return df
