"""A MovieLens release as Spark reads it: what ``train``, ``tune`` and ``evaluate`` work from.

The ratings stay a Spark DataFrame from storage to the fitted factors; only what is small by
nature is held by the driver (the movies and links tables, the release's name and fingerprint).

:func:`open_release` reads the configured release (``MOVIELENS_DATA``):

- a local GroupLens folder or zip: converted once to Parquet (:func:`~engine.data.prepare.prepare_release`,
  cached by the release's key) and read from there by ``spark.read.parquet``;
- a URI Spark reads (``file:``, ``hdfs://``, ``s3a://`` ...): a folder holding ``ratings.parquet`` (the
  prepared layout) or the GroupLens CSV files, read where it lies.

:func:`from_movielens` wraps a release already in memory (small generated data in tests).

Example:
    >>> release = open_release(spark, get_settings())   # doctest: +SKIP
    >>> release.ratings.columns   # doctest: +SKIP
    ['userId', 'movieId', 'rating']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..settings import Settings
from .movielens import GENRES, ITEM, RATING, TIME, TITLE, USER, DataError, MovieLens, release_years


@dataclass
class SparkRelease:
    """ratings: Spark DataFrame (userId int, movieId int, rating float); movies (movieId, title, genres,
    year) and links (movieId, imdbId, tmdbId): pandas, one row per movie. ``timed()`` gives the ratings
    with their ``timestamp`` (bigint, seconds) as well, for the temporal split; built when asked."""

    ratings: object
    movies: pd.DataFrame
    links: pd.DataFrame
    source: str
    name: str
    fingerprint: str
    n_ratings: int | None = None  # when known without a Spark job (a prepared release's manifest)
    timed: Callable[[], object] | None = None  # () -> the ratings with their timestamp; None: none known

    def describe(self) -> str:
        count = f"{self.n_ratings:,} ratings" if self.n_ratings is not None else "ratings"
        return f"{self.name}: {count} on {len(self.movies):,} movies, read by Spark ({self.source})"


def _typed(ratings, with_time: bool = False):
    from pyspark.sql import functions as F

    columns = [
        F.col(USER).cast("int").alias(USER),
        F.col(ITEM).cast("int").alias(ITEM),
        F.col(RATING).cast("float").alias(RATING),
    ]
    return ratings.select(*columns, *([F.col(TIME).cast("bigint").alias(TIME)] if with_time else []))


def from_movielens(spark, data: MovieLens) -> SparkRelease:
    """A release held in pandas (small data, tests), as a Spark DataFrame of its ratings."""
    types = {USER: "int32", ITEM: "int32", RATING: "float32"}
    ratings = data.ratings[[USER, ITEM, RATING]].astype(types)
    return SparkRelease(
        ratings=spark.createDataFrame(ratings),
        timed=lambda: spark.createDataFrame(data.ratings[[USER, ITEM, RATING, TIME]].astype({**types, TIME: "int64"})),
        movies=data.movies,
        links=data.links,
        source=data.source,
        name=data.name,
        fingerprint=data.fingerprint,
        n_ratings=len(data.ratings),
    )


def as_spark_release(spark, data: "SparkRelease | MovieLens") -> SparkRelease:
    return data if isinstance(data, SparkRelease) else from_movielens(spark, data)


def open_release(spark, settings: Settings, progress=None) -> SparkRelease:
    """The configured release for Spark jobs; raises :class:`~engine.data.movielens.DataError` naming
    the file (and line, for a local release) and what to do."""
    location = settings.movielens_data
    if "://" in location:
        return _open_uri(spark, location)
    from .prepare import prepare_release, read_manifest

    folder = prepare_release(settings, progress)  # at once when it is already prepared
    manifest = read_manifest(folder)
    movies = pd.read_parquet(folder / "movies.parquet").astype({"year": "Int64"})
    links = pd.read_parquet(folder / "links.parquet")
    ratings = spark.read.parquet(Path(folder, "ratings.parquet").resolve().as_uri())
    return SparkRelease(
        ratings=_typed(ratings),
        timed=lambda: _typed(ratings, with_time=True),
        movies=movies,
        links=links,
        source=manifest["source"],
        name=manifest["name"],
        fingerprint=manifest["fingerprint"],
        n_ratings=int(manifest["ratings"]),
    )


def _open_uri(spark, uri: str) -> SparkRelease:
    """A release at a URI: ``ratings.parquet`` when the folder has one, else the GroupLens CSV files."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    from .stats_spark import read_spark_tables

    base = uri.rstrip("/")
    try:
        ratings = spark.read.parquet(f"{base}/ratings.parquet")
        movies_df = spark.read.parquet(f"{base}/movies.parquet").select(ITEM, TITLE, GENRES)
        kind = "Parquet"
    except AnalysisException:
        try:
            ratings, movies_df, _ = read_spark_tables(spark, base)
            ratings.schema  # noqa: B018 -- resolves the path now: a missing file is said here
            kind = "CSV"
        except AnalysisException as exc:
            raise DataError(
                f"{base}: Spark found neither ratings.parquet nor ratings.csv there ({_first_line(exc)}). "
                "Point MOVIELENS_DATA at a GroupLens release folder (or a prepared Parquet folder)."
            ) from None
    raw, ratings = ratings, _typed(ratings)
    bad = ratings.filter(F.col(USER).isNull() | F.col(ITEM).isNull() | F.col(RATING).isNull()).limit(1).collect()
    if bad:
        raise DataError(
            f"{base}/ratings.{kind.lower()}: some rows have an empty or non-numeric userId, movieId or rating "
            f"(first: {bad[0].asDict()}). Fix or remove those rows and run again."
        )
    movies = movies_df.toPandas()  # one row per movie: small by nature
    movies["year"] = release_years(movies[TITLE])
    links = pd.DataFrame(
        {ITEM: pd.Series(dtype="int64"), "imdbId": pd.Series(dtype=str), "tmdbId": pd.Series(dtype="Int64")}
    )
    try:
        if kind == "Parquet":
            links_df = spark.read.parquet(f"{base}/links.parquet")
        else:
            links_df = spark.read.options(header="true").schema("movieId INT, imdbId STRING, tmdbId INT")
            links_df = links_df.csv(f"{base}/links.csv")
        found = links_df.select(ITEM, "imdbId", "tmdbId").toPandas()  # one row per movie: small by nature
        links = found.astype({ITEM: "int64", "tmdbId": "Int64"})
    except AnalysisException:
        pass  # links are optional: no IMDb/TMDB links then
    name = base.rsplit("/", 1)[-1] or base
    timed = (lambda: _typed(raw, with_time=True)) if TIME in raw.columns else None
    return SparkRelease(ratings, movies, links, source=uri, name=name, fingerprint=f"uri:{base}", timed=timed)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


__all__ = ["SparkRelease", "as_spark_release", "from_movielens", "open_release"]
