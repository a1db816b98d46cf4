"""The dataset statistics of :mod:`engine.data.stats` as Spark jobs, for releases too big for pandas
or stored where only Spark reads them (a URI).

The same :class:`~engine.data.stats.DatasetStats` comes out, by the same definitions (tested to agree
with the pandas path); a :class:`~engine.data.stats.Slice` narrows the data first (:func:`slice_spark`).
pyspark is imported inside the functions: importing this module starts nothing.
"""

from __future__ import annotations

import numpy as np

from .movielens import GENRES, ITEM, NO_GENRES, RATING, TAG, TIME, TITLE, USER, YEAR_PATTERN
from .stats import DatasetStats, EmptySlice, Slice, _counts, _decades


def slice_spark(ratings_df, movies_df, tags_df, part: Slice):
    """:func:`~engine.data.stats.slice_data` as Spark transformations: (ratings, movies, tags) DataFrames of ``part``.

    Lazy: an empty slice shows as zero ratings when the statistics run (see :func:`compute_stats_spark`).
    """
    from pyspark.sql import functions as F

    if part.genres:
        wanted = F.array(*[F.lit(g) for g in part.genres])
        movies_df = movies_df.filter(F.arrays_overlap(F.split(F.trim(F.col(GENRES)), r"\|"), wanted))
    if part.released:
        year = F.regexp_extract(F.col(TITLE), YEAR_PATTERN, 1)
        movies_df = movies_df.filter(year.try_cast("int").between(*part.released))  # no year: NULL, out
    if part.genres or part.released:
        ratings_df = ratings_df.join(movies_df.select(ITEM), ITEM, "left_semi")
        tags_df = tags_df.join(movies_df.select(ITEM), ITEM, "left_semi")
    if part.rated:
        ratings_df = ratings_df.filter(F.year(F.from_unixtime(F.col(TIME))).between(*part.rated))
        tags_df = tags_df.filter(F.year(F.from_unixtime(F.col(TIME))).between(*part.rated))
    return ratings_df, movies_df, tags_df


def compute_stats_spark(
    spark, ratings_df, movies_df, tags_df, top_tags: int = 20, part: Slice | None = None
) -> DatasetStats:
    """The same statistics as Spark jobs, for releases too big for pandas.

    Args:
        ratings_df, movies_df, tags_df: Spark DataFrames with GroupLens columns
            (see :func:`read_spark_tables` to read them from any URI Spark reads).
        part: describe only this slice (:func:`slice_spark`).
    """
    from pyspark.sql import functions as F

    if part is not None and not part.everything:
        ratings_df, movies_df, tags_df = slice_spark(ratings_df, movies_df, tags_df, part)
    per_user = ratings_df.groupBy(USER).count()
    per_movie = ratings_df.groupBy(ITEM).agg(F.count("*").alias("count"), F.sum(RATING).alias("total")).cache()
    n_ratings = ratings_df.count()
    if n_ratings == 0:
        per_movie.unpersist()
        what = part.describe() if part is not None else "this data"
        raise EmptySlice(f"No ratings for {what}. Choose more genres or widen the years.")
    n_users = per_user.count()
    n_rated = per_movie.count()
    n_movies = movies_df.count()
    never = movies_df.join(per_movie, ITEM, "left_anti").count()
    once = per_movie.filter("count = 1").count()
    n_tags = tags_df.count()

    def dist(df, name):
        return (
            df.groupBy(F.col("count").alias("n_ratings"))
            .agg(F.count("*").alias(name))
            .orderBy("n_ratings")
            .toPandas()
            .astype({"n_ratings": np.int64, name: np.int64})
        )

    genres = movies_df.select(ITEM, F.explode(F.split(F.col(GENRES), r"\|")).alias("genre"))
    genre_table = (
        genres.join(per_movie, ITEM, "left")
        .groupBy("genre")
        .agg(
            F.count("*").alias("movies"),
            F.coalesce(F.sum("count"), F.lit(0)).alias("ratings"),
            (F.sum("total") / F.sum("count")).alias("mean_rating"),
        )
        .toPandas()
        .astype({"movies": np.int64, "ratings": np.int64, "mean_rating": float})
        .sort_values(["movies", "genre"], ascending=[False, True])
        .reset_index(drop=True)
    )
    genre_table["mean_rating"] = genre_table["mean_rating"].round(4)
    genre_years = (
        ratings_df.select(ITEM, F.year(F.from_unixtime(F.col(TIME))).alias("year"))
        .join(genres, ITEM)
        .groupBy("year", "genre")
        .agg(F.count("*").alias("ratings"))
        .orderBy("year", "genre")
        .toPandas()
        .astype({"year": np.int64, "ratings": np.int64})
    )
    per_year = (
        ratings_df.groupBy(F.year(F.from_unixtime(F.col(TIME))).alias("year"))
        .agg(F.count("*").alias("ratings"), F.avg(RATING).alias("mean_rating"))
        .orderBy("year")
        .toPandas()
        .astype({"year": np.int32, "ratings": np.int64})
    )
    per_year["mean_rating"] = per_year["mean_rating"].round(4)
    values = ratings_df.groupBy(RATING).count().orderBy(RATING).toPandas().astype({RATING: float, "count": np.int64})
    tags = (
        tags_df.groupBy(F.lower(F.col(TAG)).alias("tag"))
        .count()
        .orderBy(F.desc("count"), "tag")
        .limit(top_tags)
        .toPandas()
        .astype({"count": np.int64})
    )
    year = F.regexp_extract(F.col(TITLE), YEAR_PATTERN, 1)
    decades = _decades(
        movies_df.filter(year != "")
        .select(ITEM, year.try_cast("long").alias("year"))
        .join(per_movie, ITEM, "left")
        .select("year", F.coalesce("count", F.lit(0)).alias("n"), F.coalesce("total", F.lit(0.0)).alias("total"))
        .toPandas()
        .astype({"year": np.int64, "n": np.int64, "total": float})
    )
    per_movie.unpersist()
    return DatasetStats(
        counts=_counts(n_users, n_movies, n_rated, n_ratings, n_tags, never, once),
        ratings_per_user=dist(per_user, "users"),
        ratings_per_movie=dist(per_movie, "movies"),
        rating_values=values,
        genres=genre_table,
        ratings_per_year=per_year,
        top_tags=tags,
        release_decades=decades,
        genre_years=genre_years,
    )


def read_spark_tables(spark, uri: str):
    """(ratings, movies, tags) Spark DataFrames from a GroupLens folder at any URI Spark reads,
    with the genres as :func:`~engine.data.movielens.load_movielens` gives them."""
    from pyspark.sql import functions as F

    base = uri.rstrip("/")
    opts = {"header": "true", "multiLine": "false", "escape": '"'}
    ratings = (
        spark.read.options(**opts)
        .schema(f"{USER} INT, {ITEM} INT, {RATING} FLOAT, {TIME} LONG")
        .csv(f"{base}/ratings.csv")
    )
    movies = spark.read.options(**opts).schema(f"{ITEM} INT, {TITLE} STRING, {GENRES} STRING").csv(f"{base}/movies.csv")
    # as load_movielens: an empty genres field is NO_GENRES, the label GroupLens itself uses
    movies = movies.withColumn(GENRES, F.coalesce(F.nullif(F.trim(F.col(GENRES)), F.lit("")), F.lit(NO_GENRES)))
    tags = (
        spark.read.options(**opts).schema(f"{USER} INT, {ITEM} INT, {TAG} STRING, {TIME} LONG").csv(f"{base}/tags.csv")
    )
    return ratings, movies, tags
