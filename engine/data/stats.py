"""Dataset statistics for the EDA page, with pandas (data that fits in memory).

Spark (:mod:`engine.data.stats_spark`, large releases) and DuckDB over the prepared Parquet
(:mod:`engine.data.stats_columnar`) return the same :class:`DatasetStats` (tested to agree), built
from the same definitions, kept here:

* distributions are tables of ``value -> count`` (ratings per user, per movie,
  rating values), so charts can put them on log scales;
* genres are the pipe-separated list exploded, "(no genres listed)" kept as its
  own bar; a genre's mean rating is over all ratings of its movies;
* ratings over time are counted per calendar year (UTC);
* release decades come from the year at the end of a title ("Heat (1995)"); movies
  without one are left out of that chart only.

A :class:`~engine.data.slices.Slice` narrows the data first (:mod:`engine.data.slices`): the same
statistics then describe that part of the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .movielens import GENRES, ITEM, NO_GENRES, RATING, TAG, TIME, TITLE, USER, MovieLens, explode_genres, release_years
from .slices import (  # the slices are part of the statistics' API
    EmptySlice,
    Slice,
    _utc_years,
    parse_years,
    slice_bounds,
    slice_data,
    slice_figures,
)


@dataclass
class DatasetStats:
    counts: dict  # users, movies, rated_movies, ratings, tags, sparsity, ...
    ratings_per_user: pd.DataFrame  # n_ratings, users
    ratings_per_movie: pd.DataFrame  # n_ratings, movies
    rating_values: pd.DataFrame  # rating, count
    genres: pd.DataFrame  # genre, movies, ratings, mean_rating (NaN: no ratings)
    ratings_per_year: pd.DataFrame  # year, ratings, mean_rating
    top_tags: pd.DataFrame  # tag, count
    release_decades: pd.DataFrame  # decade (1990), movies, ratings, mean_rating (NaN: no ratings)
    genre_years: pd.DataFrame  # year, genre, ratings: ratings given that year to movies of the genre

    def as_dict(self) -> dict:
        return {
            "counts": self.counts,
            **{
                name: _records(getattr(self, name))
                for name in (
                    "rating_values",
                    "genres",
                    "ratings_per_year",
                    "top_tags",
                    "release_decades",
                    "genre_years",
                )
            },
            "ratings_per_user_summary": summarize(self.ratings_per_user),
            "ratings_per_movie_summary": summarize(self.ratings_per_movie),
            "concentration": self.concentration(),
        }

    def concentration(self) -> dict:
        """Gini coefficient of ratings per movie, and the share of ratings the top 10 % of movies hold."""
        curve, gini = concentration(self.ratings_per_movie)
        return {"gini": gini, "top_10_percent_share": float(curve.loc[10, "share_of_ratings"])}


def _records(table: pd.DataFrame) -> list[dict]:
    """Rows as dicts, a missing value (a genre nobody rated has no mean) as None: JSON has no NaN."""
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def _count_column(dist: pd.DataFrame) -> str:
    """The count column of a ``n_ratings -> count`` distribution ("users", "movies")."""
    return next(c for c in dist.columns if c != "n_ratings")


def log_binned(dist: pd.DataFrame, bins_per_decade: int = 5) -> pd.DataFrame:
    """A ``n_ratings -> count`` distribution summed into logarithmic bins, for heavy tails.

    Exact counts on log-log axes draw a comb of single users and movies at the long
    end; bins that widen by a constant factor show the shape. Bin edges are whole
    numbers (duplicates merged), so at 5 bins per decade the first bins hold one value
    each ("1", "2", "3"); the outer bounds are the smallest and largest values seen.

    Args:
        dist: ``n_ratings`` (1 or more) plus one count column (e.g. ``ratings_per_user``).
        bins_per_decade: bins per tenfold range of ``n_ratings``.

    Returns:
        ``lo``, ``hi`` (inclusive bounds), ``label`` ("4–6") and the count column, summed;
        empty bins are left out.

    >>> log_binned(pd.DataFrame({"n_ratings": [1, 2, 3, 9, 40], "users": [5, 4, 2, 1, 1]}), 2)
       lo  hi  label  users
    0   1   3    1–3     11
    1   4   9    4–9      1
    2  32  40  32–40      1
    """
    weight = _count_column(dist)
    if dist.empty:
        return pd.DataFrame({"lo": [], "hi": [], "label": [], weight: []})
    top = int(dist["n_ratings"].max())
    steps = np.arange(0, np.log10(top) * bins_per_decade + 2)
    starts = np.unique(np.ceil(10 ** (steps / bins_per_decade) - 1e-9).astype(np.int64))
    starts = starts[starts <= top]
    which = np.searchsorted(starts, dist["n_ratings"].to_numpy(), side="right") - 1
    sums = np.bincount(which, weights=dist[weight].to_numpy(), minlength=len(starts)).astype(np.int64)
    his = np.append(starts[1:] - 1, top)
    keep = sums > 0
    lo, hi = starts[keep], his[keep]
    lo[0] = dist["n_ratings"].min()  # "20–25", not "16–25", when nobody has fewer than 20
    labels = [str(a) if a == b else f"{a}–{b}" for a, b in zip(lo, hi)]
    return pd.DataFrame({"lo": lo, "hi": hi, "label": labels, weight: sums[keep]})


def summarize(dist: pd.DataFrame) -> dict:
    """min, median, mean and max of a ``n_ratings -> count`` distribution (e.g. ratings per user)."""
    weight = _count_column(dist)
    values = np.repeat(dist["n_ratings"].to_numpy(), dist[weight].to_numpy())
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 3),
        "max": int(values.max()),
    }


def dataset_label(location: str) -> str:
    """A dataset's name as people read it, from its location, without the server's folders.

    >>> dataset_label("/srv/data/ml-latest-small.zip")
    'MovieLens latest-small (ml-latest-small.zip)'
    >>> dataset_label("s3a://bucket/releases/ml-25m/")
    'MovieLens 25m (ml-25m)'
    """
    base = str(location).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or str(location)
    stem = base[:-4] if base.lower().endswith(".zip") else base
    return f"MovieLens {stem[3:]} ({base})" if stem.lower().startswith("ml-") and len(stem) > 3 else base


def concentration(dist: pd.DataFrame, points: int = 101) -> tuple[pd.DataFrame, float]:
    """How unevenly ratings spread: the Lorenz curve from the most-rated down, and the Gini coefficient.

    Args:
        dist: a ``n_ratings -> count`` distribution (e.g. ``ratings_per_movie``: only rated movies).
        points: curve points, evenly spaced in the share of items.

    Returns:
        (``share_of_items``, ``share_of_ratings``: the most-rated fraction x of movies holds
        y of all ratings; from (0, 0) to (1, 1)), and the Gini coefficient (0: every movie
        rated equally often; towards 1: a few movies hold nearly every rating).

    >>> curve, gini = concentration(pd.DataFrame({"n_ratings": [1, 9], "movies": [1, 1]}), 3)
    >>> curve["share_of_ratings"].tolist(), gini
    ([0.0, 0.9, 1.0], 0.4)
    """
    weight = _count_column(dist)
    sizes = np.repeat(dist["n_ratings"].to_numpy(dtype=float), dist[weight].to_numpy())[::-1]  # largest first
    if not sizes.size or sizes.sum() == 0:
        return pd.DataFrame({"share_of_items": [0.0, 1.0], "share_of_ratings": [0.0, 1.0]}), 0.0
    held = np.concatenate([[0.0], np.cumsum(sizes) / sizes.sum()])
    x = np.linspace(0, 1, points)
    y = np.interp(x * sizes.size, np.arange(sizes.size + 1), held)
    ascending = np.cumsum(sizes[::-1]) / sizes.sum()
    gini = 1 - (2 * ascending.sum() - 1) / sizes.size  # 1 - 2 x area under the (ascending) Lorenz curve
    return (pd.DataFrame({"share_of_items": x.round(6), "share_of_ratings": y.round(6)}), round(float(gini), 4))


def _counts(n_users, n_movies, n_rated_movies, n_ratings, n_tags, never, once) -> dict:
    return {
        "users": int(n_users),
        "movies": int(n_movies),
        "rated_movies": int(n_rated_movies),
        "ratings": int(n_ratings),
        "tags": int(n_tags),
        "sparsity": round(1 - n_ratings / (n_users * n_rated_movies), 6),
        "movies_never_rated": int(never),
        "movies_rated_once": int(once),
    }


def _decades(rated_movies: pd.DataFrame) -> pd.DataFrame:
    """``decade, movies, ratings, mean_rating`` from one row per movie with a year: ``year, n, total``."""
    table = (
        rated_movies.assign(decade=rated_movies["year"] // 10 * 10)
        .groupby("decade")
        .agg(movies=("year", "size"), ratings=("n", "sum"), total=("total", "sum"))
        .reset_index()
        .astype({"decade": np.int64, "movies": np.int64, "ratings": np.int64})
    )
    table["mean_rating"] = (table.pop("total") / table["ratings"].replace(0, np.nan)).round(4)
    return table


def _genre_table(genres: pd.DataFrame, movie_sums: pd.DataFrame) -> pd.DataFrame:
    """``genre, movies, ratings, mean_rating`` from (movieId, genre) rows and per-movie ``n, total``."""
    genre_ratings = genres.merge(movie_sums, on=ITEM, how="left").fillna({"n": 0, "total": 0.0})
    table = (
        genre_ratings.groupby("genre")
        .agg(movies=(ITEM, "count"), ratings=("n", "sum"), total=("total", "sum"))
        .reset_index()
        .astype({"ratings": np.int64})
        .sort_values(["movies", "genre"], ascending=[False, True])
        .reset_index(drop=True)
    )
    table["mean_rating"] = (table.pop("total") / table["ratings"].replace(0, np.nan)).round(4)
    return table


def _movie_decades(movies: pd.DataFrame, movie_sums: pd.DataFrame, years: pd.Series | None = None) -> pd.DataFrame:
    """The release decades of ``movies`` (year from the title, or ``years`` when already read) with their
    per-movie ``n, total``."""
    with_year = (
        movies[[ITEM]]
        .assign(year=release_years(movies[TITLE]) if years is None else years)
        .dropna()
        .astype({"year": np.int64})
    )
    return _decades(with_year.merge(movie_sums, on=ITEM, how="left").fillna({"n": 0, "total": 0.0}))


def compute_stats(data: MovieLens, top_tags: int = 20, part: Slice | None = None) -> DatasetStats:
    """All statistics with pandas (fine up to a few tens of millions of ratings), of ``part`` if given."""
    if part is not None:
        data = slice_data(data, part)
    r, movies = data.ratings, data.movies
    if r.empty:
        raise EmptySlice(f"No ratings in {data.name}: there is nothing to describe.")
    per_user = r.groupby(USER).size()
    movie_sums = r.groupby(ITEM)[RATING].agg(n="size", total="sum").reset_index()
    per_movie = movie_sums.set_index(ITEM)["n"]
    genres = explode_genres(movies)
    genre_table = _genre_table(genres, movie_sums)
    years = _utc_years(r[TIME])
    genre_years = (
        r[[ITEM]]
        .assign(year=years)
        .merge(genres, on=ITEM)
        .groupby(["year", "genre"])
        .size()
        .reset_index(name="ratings")
        .astype({"year": np.int64, "ratings": np.int64})
        .sort_values(["year", "genre"])
        .reset_index(drop=True)
    )
    per_year = (
        r.assign(year=years).groupby("year").agg(ratings=(RATING, "size"), mean_rating=(RATING, "mean")).reset_index()
    )
    per_year["mean_rating"] = per_year["mean_rating"].round(4)
    tags = (
        data.tags[TAG]
        .str.lower()
        .value_counts()
        .rename_axis("tag")
        .reset_index(name="count")
        .sort_values(["count", "tag"], ascending=[False, True])
        .head(top_tags)
        .reset_index(drop=True)
    )
    decades = _movie_decades(movies, movie_sums)
    rated = set(per_movie.index)
    return DatasetStats(
        counts=_counts(
            len(per_user),
            len(movies),
            len(per_movie),
            len(r),
            len(data.tags),
            (~movies[ITEM].isin(rated)).sum(),
            (per_movie == 1).sum(),
        ),
        ratings_per_user=_distribution(per_user, "users"),
        ratings_per_movie=_distribution(per_movie, "movies"),
        rating_values=r[RATING].astype(float).value_counts().sort_index().rename_axis(RATING).reset_index(name="count"),
        genres=genre_table,
        ratings_per_year=per_year,
        top_tags=tags,
        release_decades=decades,
        genre_years=genre_years,
    )


def _distribution(sizes: pd.Series, name: str) -> pd.DataFrame:
    return sizes.value_counts().sort_index().rename_axis("n_ratings").reset_index(name=name)


def top_movies(data: MovieLens, by: str = "count", min_ratings: int = 50, n: int = 20) -> pd.DataFrame:
    """Most-rated (``by='count'``) or best-rated (``by='mean'``, at least ``min_ratings``) movies."""
    agg = data.ratings.groupby(ITEM)[RATING].agg(ratings="count", mean_rating="mean").reset_index()
    return rank_movies(agg, data.movies, by, min_ratings, n)


def rank_movies(
    agg: pd.DataFrame, movies: pd.DataFrame, by: str = "count", min_ratings: int = 50, n: int = 20
) -> pd.DataFrame:
    """:func:`top_movies` from per-movie ``movieId, ratings, mean_rating`` (movieId ascending)."""
    agg = agg.merge(movies[[ITEM, TITLE, GENRES]], on=ITEM)
    agg["mean_rating"] = agg["mean_rating"].astype(float).round(3)
    if by == "mean":
        agg = agg[agg["ratings"] >= min_ratings].sort_values(["mean_rating", "ratings"], ascending=False)
    else:
        agg = agg.sort_values(["ratings", "mean_rating"], ascending=False)
    return agg.head(n).reset_index(drop=True)[[ITEM, TITLE, GENRES, "ratings", "mean_rating"]]


__all__ = [
    "DatasetStats",
    "EmptySlice",
    "Slice",
    "compute_stats",
    "concentration",
    "parse_years",
    "dataset_label",
    "log_binned",
    "summarize",
    "slice_bounds",
    "slice_data",
    "slice_figures",
    "top_movies",
    "rank_movies",
    "NO_GENRES",
]
