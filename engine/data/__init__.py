"""MovieLens data: loading and checking a GroupLens release (``movielens``), fetching one
(``fetch``), converting it once to typed Parquet (``prepare``) and describing it: statistics with
pandas or Spark (``stats``) or DuckDB over the Parquet (``stats_columnar``).

Importing this package imports nothing else: no Spark, no TensorFlow.
"""

__all__ = ["movielens", "fetch", "prepare", "stats", "stats_columnar"]
