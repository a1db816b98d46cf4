"""MovieLens data: loading and checking a GroupLens release (``movielens``), fetching one (``fetch``),
converting it once to typed Parquet (``prepare``; the conversion itself in ``parquet_convert``) and
describing it: slices of it (``slices``), dataset statistics with pandas
(``stats``, where the definitions live), as Spark jobs (``stats_spark``) or with DuckDB over the Parquet
(``stats_columnar``), and one movie's profile (``movie_profile``).

Importing this package imports none of its modules: no Spark, no TensorFlow.
"""

__all__ = [
    "movielens",
    "fetch",
    "prepare",
    "parquet_convert",
    "slices",
    "stats",
    "stats_spark",
    "stats_columnar",
    "movie_profile",
]
