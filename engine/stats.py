"""Dataset statistics for the EDA page: pandas for data that fits, Spark for large releases.

Both paths return the same :class:`DatasetStats` (tested to agree), built from
the same definitions:

* distributions are tables of ``value -> count`` (ratings per user, per movie,
  rating values), so charts can put them on log scales;
* genres are the pipe-separated list exploded, "(no genres listed)" kept as its
  own bar; a genre's mean rating is over all ratings of its movies;
* ratings over time are counted per calendar year (UTC).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .movielens import GENRES, ITEM, NO_GENRES, RATING, TAG, TIME, TITLE, USER, MovieLens, explode_genres


@dataclass
class DatasetStats:
    counts: dict                   # users, movies, rated_movies, ratings, tags, sparsity, ...
    ratings_per_user: pd.DataFrame  # n_ratings, users
    ratings_per_movie: pd.DataFrame  # n_ratings, movies
    rating_values: pd.DataFrame     # rating, count
    genres: pd.DataFrame            # genre, movies, ratings, mean_rating (NaN: no ratings)
    ratings_per_year: pd.DataFrame  # year, ratings, mean_rating
    top_tags: pd.DataFrame          # tag, count

    def as_dict(self) -> dict:
        return {"counts": self.counts,
                **{name: _records(getattr(self, name))
                   for name in ("rating_values", "genres", "ratings_per_year", "top_tags")},
                "ratings_per_user_summary": summarize(self.ratings_per_user),
                "ratings_per_movie_summary": summarize(self.ratings_per_movie)}


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
    return {"min": int(values.min()), "median": float(np.median(values)),
            "mean": round(float(values.mean()), 3), "max": int(values.max())}


def _counts(n_users, n_movies, n_rated_movies, n_ratings, n_tags, never, once) -> dict:
    return {"users": int(n_users), "movies": int(n_movies), "rated_movies": int(n_rated_movies),
            "ratings": int(n_ratings), "tags": int(n_tags),
            "sparsity": round(1 - n_ratings / (n_users * n_rated_movies), 6),
            "movies_never_rated": int(never), "movies_rated_once": int(once)}


def compute_stats(data: MovieLens, top_tags: int = 20) -> DatasetStats:
    """All statistics with pandas (fine up to a few tens of millions of ratings)."""
    r, movies = data.ratings, data.movies
    per_user = r.groupby(USER).size()
    movie_sums = r.groupby(ITEM)[RATING].agg(n="size", total="sum").reset_index()
    per_movie = movie_sums.set_index(ITEM)["n"]
    genres = explode_genres(movies)
    genre_ratings = genres.merge(movie_sums, on=ITEM, how="left").fillna({"n": 0, "total": 0.0})
    genre_table = (genre_ratings.groupby("genre")
                   .agg(movies=(ITEM, "count"), ratings=("n", "sum"), total=("total", "sum")).reset_index()
                   .astype({"ratings": np.int64})
                   .sort_values(["movies", "genre"], ascending=[False, True]).reset_index(drop=True))
    genre_table["mean_rating"] = (genre_table.pop("total") / genre_table["ratings"].replace(0, np.nan)).round(4)
    years = pd.to_datetime(r[TIME], unit="s", utc=True).dt.year
    per_year = (r.assign(year=years).groupby("year")
                .agg(ratings=(RATING, "size"), mean_rating=(RATING, "mean")).reset_index())
    per_year["mean_rating"] = per_year["mean_rating"].round(4)
    tags = (data.tags[TAG].str.lower().value_counts().rename_axis("tag").reset_index(name="count")
            .sort_values(["count", "tag"], ascending=[False, True]).head(top_tags).reset_index(drop=True))
    rated = set(per_movie.index)
    return DatasetStats(
        counts=_counts(len(per_user), len(movies), len(per_movie), len(r), len(data.tags),
                       (~movies[ITEM].isin(rated)).sum(), (per_movie == 1).sum()),
        ratings_per_user=_distribution(per_user, "users"),
        ratings_per_movie=_distribution(per_movie, "movies"),
        rating_values=r[RATING].astype(float).value_counts().sort_index().rename_axis(RATING)
        .reset_index(name="count"),
        genres=genre_table, ratings_per_year=per_year, top_tags=tags)


def _distribution(sizes: pd.Series, name: str) -> pd.DataFrame:
    return sizes.value_counts().sort_index().rename_axis("n_ratings").reset_index(name=name)


def compute_stats_spark(spark, ratings_df, movies_df, tags_df, top_tags: int = 20) -> DatasetStats:
    """The same statistics as Spark jobs, for releases too big for pandas.

    Args:
        ratings_df, movies_df, tags_df: Spark DataFrames with GroupLens columns
            (see :func:`read_spark_tables` to read them from any URI Spark reads).
    """
    from pyspark.sql import functions as F

    per_user = ratings_df.groupBy(USER).count()
    per_movie = ratings_df.groupBy(ITEM).agg(F.count("*").alias("count"),
                                             F.sum(RATING).alias("total")).cache()
    n_ratings = ratings_df.count()
    n_users = per_user.count()
    n_rated = per_movie.count()
    n_movies = movies_df.count()
    never = movies_df.join(per_movie, ITEM, "left_anti").count()
    once = per_movie.filter("count = 1").count()
    n_tags = tags_df.count()

    def dist(df, name):
        return (df.groupBy(F.col("count").alias("n_ratings")).agg(F.count("*").alias(name))
                .orderBy("n_ratings").toPandas().astype({"n_ratings": np.int64, name: np.int64}))

    genres = movies_df.select(ITEM, F.explode(F.split(F.col(GENRES), r"\|")).alias("genre"))
    genre_table = (genres.join(per_movie, ITEM, "left").groupBy("genre")
                   .agg(F.count("*").alias("movies"), F.coalesce(F.sum("count"), F.lit(0)).alias("ratings"),
                        (F.sum("total") / F.sum("count")).alias("mean_rating"))
                   .toPandas().astype({"movies": np.int64, "ratings": np.int64, "mean_rating": float})
                   .sort_values(["movies", "genre"], ascending=[False, True]).reset_index(drop=True))
    genre_table["mean_rating"] = genre_table["mean_rating"].round(4)
    per_year = (ratings_df.groupBy(F.year(F.from_unixtime(F.col(TIME))).alias("year"))
                .agg(F.count("*").alias("ratings"), F.avg(RATING).alias("mean_rating"))
                .orderBy("year").toPandas().astype({"year": np.int32, "ratings": np.int64}))
    per_year["mean_rating"] = per_year["mean_rating"].round(4)
    values = (ratings_df.groupBy(RATING).count().orderBy(RATING).toPandas()
              .astype({RATING: float, "count": np.int64}))
    tags = (tags_df.groupBy(F.lower(F.col(TAG)).alias("tag")).count()
            .orderBy(F.desc("count"), "tag").limit(top_tags).toPandas().astype({"count": np.int64}))
    per_movie.unpersist()
    return DatasetStats(
        counts=_counts(n_users, n_movies, n_rated, n_ratings, n_tags, never, once),
        ratings_per_user=dist(per_user, "users"), ratings_per_movie=dist(per_movie, "movies"),
        rating_values=values, genres=genre_table, ratings_per_year=per_year, top_tags=tags)


def read_spark_tables(spark, uri: str):
    """(ratings, movies, tags) Spark DataFrames from a GroupLens folder at any URI Spark reads."""
    base = uri.rstrip("/")
    opts = {"header": "true", "multiLine": "false", "escape": '"'}
    ratings = spark.read.options(**opts).schema(
        f"{USER} INT, {ITEM} INT, {RATING} FLOAT, {TIME} LONG").csv(f"{base}/ratings.csv")
    movies = spark.read.options(**opts).schema(f"{ITEM} INT, {TITLE} STRING, {GENRES} STRING").csv(
        f"{base}/movies.csv")
    tags = spark.read.options(**opts).schema(
        f"{USER} INT, {ITEM} INT, {TAG} STRING, {TIME} LONG").csv(f"{base}/tags.csv")
    return ratings, movies, tags


def top_movies(data: MovieLens, by: str = "count", min_ratings: int = 50, n: int = 20) -> pd.DataFrame:
    """Most-rated (``by='count'``) or best-rated (``by='mean'``, at least ``min_ratings``) movies."""
    agg = data.ratings.groupby(ITEM)[RATING].agg(ratings="count", mean_rating="mean").reset_index()
    agg = agg.merge(data.movies[[ITEM, TITLE, GENRES]], on=ITEM)
    agg["mean_rating"] = agg["mean_rating"].astype(float).round(3)
    if by == "mean":
        agg = agg[agg["ratings"] >= min_ratings].sort_values(["mean_rating", "ratings"], ascending=False)
    else:
        agg = agg.sort_values(["ratings", "mean_rating"], ascending=False)
    return agg.head(n).reset_index(drop=True)[[ITEM, TITLE, GENRES, "ratings", "mean_rating"]]


__all__ = ["DatasetStats", "compute_stats", "compute_stats_spark", "read_spark_tables", "top_movies",
           "NO_GENRES"]
