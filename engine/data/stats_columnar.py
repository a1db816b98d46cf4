"""The statistics page's numbers from the prepared Parquet with DuckDB: any slice in well under a second at 25 M.

Same :class:`~engine.data.stats.DatasetStats` as :func:`engine.data.stats.compute_stats` (tested equal,
table by table), without loading the ratings: every slice narrows movies (genres, release
years) and ratings (years given), so the movie-level figures are sums over the prepared
``movie_years`` summary (movie x year rated x star; ~1 M rows at 25 M ratings, held as
arrays), and the user-level ones over ``user_years`` (user x year) or, when movies are
narrowed, one pass over compact per-rating arrays (movie row, year rated) that ``prepare-data``
wrote (``user_cells.npz``). DuckDB reads the Parquet (and parses the CSV in ``prepare-data``). The
movie table stays in pandas, so the slice's movies are chosen as :func:`engine.data.stats.slice_data`
chooses them, and the final tables are built by the same helpers as the pandas path.

Why DuckDB (not Polars): on the 25 M Parquet both group by user in ~0.5-0.9 s and by movie in
~3-4 s on this loaded 2-core machine (DuckDB a little ahead each time), so neither answers a
slice in 1 s from the raw ratings: the speed comes from the summaries. DuckDB then does the
rest with one dependency: it parses the release's CSV for ``prepare-data`` with strict types
(25 M rows in ~25 s), reads the Parquet, and gives each thread its own cursor on one
connection, which the app's concurrent sessions need.

Example:
    >>> release = ColumnarRelease(parquet_release(get_settings()))   # doctest: +SKIP
    >>> release.stats(Slice(genres=("Comedy",))).counts["ratings"]     # doctest: +SKIP
"""

from __future__ import annotations

import calendar
import logging
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .movie_profile import MovieProfile
from .movielens import GENRES, ITEM, NO_GENRES, RATING, TITLE, USER, DataError, explode_genres
from .parquet_convert import STARS
from .prepare import read_manifest
from .stats import DatasetStats, EmptySlice, Slice, _counts, _genre_table, _movie_decades, rank_movies

log = logging.getLogger(__name__)

_STAR_COLS = [f"r{k}" for k in range(1, 11)]


def _epoch(year: int) -> int:
    """Seconds at the start of 1 January ``year``, UTC."""
    return calendar.timegm((year, 1, 1, 0, 0, 0))


class ColumnarRelease:
    """One prepared release (see :mod:`engine.data.prepare`), queried with DuckDB.

    Holds the movie table and the two summaries as arrays (tens of MB at 25 M ratings) and
    one DuckDB connection for the ratings and tags; each query runs on its own cursor, so
    one object serves the app's concurrent sessions. Nothing is changed after ``__init__``.
    """

    def __init__(self, folder: str | Path):
        import duckdb

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self._con = duckdb.connect()
        self._files = {
            name: str(self.folder / f"{name}.parquet") for name in ("ratings", "tags", "movie_years", "user_years")
        }
        movies = pd.read_parquet(self.folder / "movies.parquet")
        self.movies = movies.astype({ITEM: np.int64, "year": "Int64"}).reset_index(drop=True)
        self.genres = explode_genres(self.movies)
        self.genre_names = np.array(sorted(self.genres["genre"].unique()), dtype=object)
        positions = np.repeat(np.arange(len(self.movies)), self.movies[GENRES].str.count(r"\|") + 1)
        self._genre_of = np.zeros((len(self.movies), len(self.genre_names)))  # movie x genre: times listed
        np.add.at(self._genre_of, (positions, np.searchsorted(self.genre_names, self.genres["genre"].to_numpy())), 1)
        cube = self._query("SELECT * FROM {movie_years}")
        self._movie = self._position(cube[ITEM].to_numpy())
        self._year = cube["year"].to_numpy(np.int64)
        self._stars = cube[_STAR_COLS].to_numpy(np.int64)
        self._n = self._stars.sum(axis=1)
        self._total = self._stars @ STARS  # whole and half stars: exact in float64
        tags = self._query(f"SELECT {ITEM}, timestamp, tag_folded FROM {{tags}}")
        codes, self._tag_names = pd.factorize(tags["tag_folded"])
        self._tag = codes.astype(np.int64)
        known = tags[ITEM].isin(self.movies[ITEM]).to_numpy()
        self._tag_movie = np.full(len(tags), -1, np.int64)  # -1: a tag of a movie not in movies.csv
        self._tag_movie[known] = self._position(tags.loc[known, ITEM].to_numpy())
        self._tag_time = tags["timestamp"].to_numpy(np.int64)
        self._ratings = None  # per-rating arrays, read at the first slice by genre or release year
        self._whole = None  # stats() of everything, once computed
        self._lock = threading.Lock()
        users = self._query("SELECT * FROM {user_years}")
        self._user = np.unique(users[USER].to_numpy(), return_inverse=True)[1].ravel()
        self._user_year = users["year"].to_numpy(np.int64)
        self._user_n = users["n"].to_numpy(np.int64)

    def _position(self, movie_ids: np.ndarray) -> np.ndarray:
        """Row of each (known) movie id in ``self.movies``."""
        ids = self.movies[ITEM].to_numpy()
        by_id = np.argsort(ids, kind="stable")  # ids up to 2^31: a search, not a table as long as the largest id
        return by_id[np.searchsorted(ids[by_id], movie_ids)]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    def _query(self, sql: str, params: list | None = None, **tables) -> pd.DataFrame:
        cur = self._con.cursor()
        try:
            for table_name, frame in tables.items():  # Arrow: registering pandas costs ~15 ms a table
                cur.register(
                    table_name,
                    pa.Table.from_pandas(frame, preserve_index=False) if isinstance(frame, pd.DataFrame) else frame,
                )
            sql = sql.format(**{k: f"read_parquet('{v}')" for k, v in self._files.items()})
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    # ------------------------------------------------------------------ slices
    def movies_of(self, part: Slice) -> pd.DataFrame:
        """The slice's movies, chosen as :func:`engine.data.stats.slice_data` chooses them."""
        keep = np.ones(len(self.movies), bool)
        if part.genres:
            part.check_genres(self.genre_names)
            keep &= self._genre_of[:, np.searchsorted(self.genre_names, part.genres)].any(axis=1)
        if part.released:  # a movie without a year in its title is outside every range
            keep &= self.movies["year"].between(*part.released).fillna(False).to_numpy(bool)
        return self.movies[keep]

    def bounds(self) -> dict:
        """As :func:`engine.data.stats.slice_bounds`: genres, release years and years rated to choose from."""
        years = self.movies["year"].dropna()
        return {
            "genres": list(self.genre_names),
            "released": (int(years.min()), int(years.max())) if len(years) else None,
            "rated": (int(self._year.min()), int(self._year.max())),
        }

    def _rows(self, part: Slice, movies: pd.DataFrame) -> np.ndarray:
        """The summary rows (movie x year rated) inside the slice."""
        rows = np.ones(len(self._year), bool)
        if part.genres or part.released:
            wanted = np.zeros(len(self.movies), bool)
            wanted[movies.index.to_numpy()] = True
            rows &= wanted[self._movie]
        if part.rated:
            rows &= (self._year >= part.rated[0]) & (self._year <= part.rated[1])
        return rows

    def _movie_sums(self, rows: np.ndarray) -> pd.DataFrame:
        """Per movie with a rating in the slice: ``n`` and ``total`` (sum of stars), by movieId as pandas gives."""
        size = len(self.movies)
        n = np.bincount(self._movie[rows], weights=self._n[rows], minlength=size)
        total = np.bincount(self._movie[rows], weights=self._total[rows], minlength=size)
        rated = np.flatnonzero(n)
        return (
            pd.DataFrame(
                {ITEM: self.movies[ITEM].to_numpy()[rated], "n": n[rated].astype(np.int64), "total": total[rated]}
            )
            .sort_values(ITEM)
            .reset_index(drop=True)
        )

    # ------------------------------------------------------------------ statistics
    def stats(self, part: Slice | None = None, top_tags: int = 20) -> DatasetStats:
        """:func:`engine.data.stats.compute_stats` of ``part`` (everything when None), from the Parquet."""
        part = part or Slice()
        whole = part.everything and top_tags == 20  # the figures every first visit shows: kept
        if whole and self._whole is not None:
            return self._whole
        movies = self.movies_of(part)
        rows = self._rows(part, movies)
        movie_sums = self._movie_sums(rows)
        n_ratings = int(movie_sums["n"].sum())
        if n_ratings == 0:
            raise EmptySlice(
                f"No ratings for {part.describe()}. Choose more genres or widen the years."
                if not part.everything
                else f"No ratings in {self.name}: there is nothing to describe."
            )
        y0 = int(self._year.min())
        year = self._year[rows] - y0
        per_n = np.bincount(year, weights=self._n[rows])
        per_total = np.bincount(year, weights=self._total[rows])
        seen = np.flatnonzero(per_n)
        per_year = pd.DataFrame(
            {
                "year": (seen + y0).astype(np.int32),
                "ratings": per_n[seen].astype(np.int64),
                # pandas means float32 ratings in float32: the same numbers, rounded alike
                "mean_rating": pd.Series((per_total[seen] / per_n[seen]).astype(np.float32)).round(4),
            }
        )
        stars = self._stars[rows].sum(axis=0)
        rating_values = pd.DataFrame({"rating": STARS[stars > 0], "count": stars[stars > 0].astype(np.int64)})
        by_year = np.bincount(
            year * len(self.movies) + self._movie[rows],
            weights=self._n[rows],
            minlength=(year.max() + 1) * len(self.movies),
        ).reshape(-1, len(self.movies))
        cells = by_year @ self._genre_of  # year x genre: ratings of the genre's movies that year
        y, g = np.nonzero(cells)
        genre_years = (
            pd.DataFrame(
                {
                    "year": (y + y0).astype(np.int64),
                    "genre": self.genre_names[g],
                    "ratings": cells[y, g].astype(np.int64),
                }
            )
            .sort_values(["year", "genre"])
            .reset_index(drop=True)
        )
        tag_counts = self._tag_counts(part, movies)
        tags = tag_counts.sort_values(["count", "tag"], ascending=[False, True]).head(top_tags).reset_index(drop=True)
        per_user = self._users(part, movies)
        per_movie = movie_sums["n"]
        genres = self.genres[self.genres[ITEM].isin(movies[ITEM])]
        result = DatasetStats(
            counts=_counts(
                int(per_user["users"].sum()),
                len(movies),
                len(movie_sums),
                n_ratings,
                int(tag_counts["count"].sum()),
                (~movies[ITEM].isin(movie_sums[ITEM])).sum(),
                (per_movie == 1).sum(),
            ),
            ratings_per_user=per_user,
            ratings_per_movie=per_movie.value_counts().sort_index().rename_axis("n_ratings").reset_index(name="movies"),
            rating_values=rating_values,
            genres=_genre_table(genres, movie_sums),
            ratings_per_year=per_year,
            top_tags=tags,
            release_decades=_movie_decades(movies, movie_sums, movies["year"]),
            genre_years=genre_years,
        )
        if whole:
            self._whole = result
        return result

    def _tag_counts(self, part: Slice, movies: pd.DataFrame) -> pd.DataFrame:
        """``tag`` (lower case), ``count`` of the slice's tags (of its movies, given in its years)."""
        rows = np.ones(len(self._tag), bool)
        if not part.everything:  # as slice_data: a slice keeps only tags of its movies (known ones)
            wanted = np.zeros(len(self.movies) + 1, bool)  # the extra last entry: unknown movies (-1)
            wanted[movies.index.to_numpy()] = True
            rows &= wanted[self._tag_movie]
        if part.rated:
            rows &= (self._tag_time >= _epoch(part.rated[0])) & (self._tag_time < _epoch(part.rated[1] + 1))
        counts = np.bincount(self._tag[rows], minlength=len(self._tag_names))
        used = np.flatnonzero(counts)
        return pd.DataFrame(
            {"tag": np.asarray(self._tag_names, dtype=object)[used], "count": counts[used].astype(np.int64)}
        )

    def warm(self) -> None:
        """Compute the whole release's figures and read the per-rating arrays now: the app calls
        this on a background thread at its first page view, so that neither the statistics page's
        first visit nor its first slice by genre waits for them. Quiet: a damaged prepared folder is
        reported by the query that needs it."""
        try:
            self.stats()
            self._rating_arrays()
        except (EmptySlice, DataError) as exc:
            log.info("%s: not warmed (%s)", self.folder, exc)

    def _rating_arrays(self) -> dict:
        """Per rating, in userId order: the movie's row and the year rated (offset); where each user starts.

        Written by ``prepare-data`` (``user_cells.npz``, ~3 bytes a rating: ~75 MB at 25 M) and
        read once, at the first slice that narrows movies: what a user rated cannot be summed
        ahead for every set of genres.
        """
        with self._lock:
            if self._ratings is None:
                path = self.folder / "user_cells.npz"
                try:
                    with np.load(path) as cells:
                        ratings = {name: cells[name] for name in ("movie", "year", "starts")}
                        first_year = int(cells["first_year"])
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                    raise DataError(
                        f"{path} cannot be read ({type(exc).__name__}: {exc}). Delete the folder {self.folder} "
                        "and run `python -m engine prepare-data` again."
                    ) from exc
                if first_year != int(self._year.min()) or len(ratings["starts"]) > len(ratings["movie"]):
                    raise DataError(
                        f"{path} does not belong with movie_years.parquet beside it. Delete the folder "
                        f"{self.folder} and run `python -m engine prepare-data` again."
                    )
                self._ratings = ratings
            return self._ratings

    def _users(self, part: Slice, movies: pd.DataFrame) -> pd.DataFrame:
        """``n_ratings -> users`` of the slice: from the user x year summary unless movies are narrowed,
        else one DuckDB pass over the ratings' user and movie ids (and timestamps)."""
        if part.genres or part.released:
            r = self._rating_arrays()
            wanted = np.zeros(len(self.movies), bool)
            wanted[movies.index.to_numpy()] = True
            inside = wanted[r["movie"]]
            if part.rated:
                y0 = int(self._year.min())
                years = np.zeros(int(r["year"].max()) + 1, bool)
                years[max(part.rated[0] - y0, 0) : max(part.rated[1] - y0 + 1, 0)] = True
                inside &= years[r["year"]]
            # per user: differences of a running count at the users' last rows (reduceat is 10x slower)
            running = np.cumsum(inside, dtype=np.int32)[np.r_[r["starts"][1:], len(inside)] - 1]
            per_user = np.diff(running, prepend=0)
            per_user = per_user[per_user > 0]
        else:
            rows = np.ones(len(self._user), bool)
            if part.rated:
                rows = (self._user_year >= part.rated[0]) & (self._user_year <= part.rated[1])
            per_user = np.bincount(self._user[rows], weights=self._user_n[rows]).astype(np.int64)
            per_user = per_user[per_user > 0]
        sizes, users = np.unique(per_user.astype(np.int64), return_counts=True)
        return pd.DataFrame({"n_ratings": sizes.astype(np.int64), "users": users.astype(np.int64)})

    def movie_profile(self, movie_id: int, top_tags: int = 12) -> MovieProfile:
        """:func:`engine.data.movie_profile.movie_profile` of one movie, from the summaries (the
        similar page's *About* panel: the pandas path loads the whole release, 130 s at 25 M)."""
        ids = self.movies[ITEM].to_numpy()
        hits = np.flatnonzero(ids == int(movie_id))
        if not len(hits):
            raise ValueError(f"Movie id {movie_id} is not in {self.name}'s movies.csv.")
        row = int(hits[0])
        rows = self._movie == row
        stars = self._stars[rows].sum(axis=0)
        n = int(stars.sum())
        per_movie = np.bincount(self._movie, weights=self._n, minlength=len(self.movies))
        counts = per_movie[per_movie > 0]
        years = self._year[rows]
        tag_codes = self._tag[self._tag_movie == row]
        used, tag_n = np.unique(tag_codes, return_counts=True)
        tags = (
            pd.DataFrame({"tag": np.asarray(self._tag_names, dtype=object)[used], "count": tag_n.astype(np.int64)})
            .sort_values(["count", "tag"], ascending=[False, True])
            .head(top_tags)
            .reset_index(drop=True)
        )
        n_users = int(self.manifest["users"])
        mean = np.float32(np.float32(stars @ STARS) / np.float32(n)) if n else None  # as pandas means float32
        movie = self.movies.iloc[row]
        return MovieProfile(
            movie_id=int(movie_id),
            title=str(movie[TITLE]),
            genres=[g for g in str(movie[GENRES]).split("|") if g != NO_GENRES],
            ratings=n,
            mean_rating=round(float(mean), 4) if n else None,
            popularity_rank=int((counts > n).sum()) + 1 if n else None,
            users_share=round(n / n_users, 6) if n_users else 0.0,  # one rating per user and movie (checked)
            years_rated=(int(years.min()), int(years.max())) if n else None,
            rating_values=pd.DataFrame({RATING: STARS, "count": stars.astype(np.int64)}),
            tags=tags,
        )

    def top_movies(
        self, part: Slice | None = None, by: str = "count", min_ratings: int = 50, n: int = 20
    ) -> pd.DataFrame:
        """:func:`engine.data.stats.top_movies` of the slice."""
        part = part or Slice()
        movies = self.movies_of(part)
        sums = self._movie_sums(self._rows(part, movies))
        if sums.empty:
            raise EmptySlice(f"No ratings for {part.describe()}. Choose more genres or widen the years.")
        agg = pd.DataFrame(
            {ITEM: sums[ITEM], "ratings": sums["n"], "mean_rating": (sums["total"] / sums["n"]).astype(np.float32)}
        )
        return rank_movies(agg, movies[[ITEM, TITLE, GENRES]], by, min_ratings, n)


__all__ = ["ColumnarRelease"]
