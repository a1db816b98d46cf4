"""Approximate similar movies with Spark's ``BucketedRandomProjectionLSH``.

For batch jobs and catalogues too big for one machine's memory. Item factors are
L2-normalised first, so Euclidean distance ``d`` maps to cosine ``1 - d**2 / 2``
and the ranking equals the exact cosine ranking of :mod:`engine.recommender.serving` whenever
LSH finds the true neighbours (recall is measured in tests and ``bench/``).
The serving index (exact, numpy) stays the request path.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, TITLE

#: Tuned on ml-latest-small (rank 16, unit vectors): recall@5 vs exact >= 0.9; it holds at rank 64, the default since
#: 2026-12-03 (tests/test_lsh.py); see bench/.
DEFAULT_BUCKET_LENGTH = 1.0
DEFAULT_HASH_TABLES = 8


class LSHIndex:
    """A fitted LSH model over the normalised item factors of one saved model, with the items'
    hashes computed and cached once (build it once per model; each query then reuses them)."""

    def __init__(
        self,
        spark,
        item_frame: pd.DataFrame,
        movies: pd.DataFrame,
        bucket_length: float = DEFAULT_BUCKET_LENGTH,
        num_hash_tables: int = DEFAULT_HASH_TABLES,
        seed: int = 42,
    ):
        from pyspark.ml.feature import BucketedRandomProjectionLSH
        from pyspark.ml.linalg import Vectors

        started = time.perf_counter()
        fcols = [c for c in item_frame.columns if c.startswith("f") and c[1:].isdigit()]
        mat = item_frame[fcols].to_numpy(np.float64)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        mat = mat / np.where(norms == 0, 1, norms)
        self.support = dict(zip(item_frame[ITEM].astype(int), item_frame["n_ratings"].astype(int)))
        self.movies = movies.set_index(ITEM)
        rows = [(int(m), int(s), Vectors.dense(v)) for m, s, v in zip(item_frame[ITEM], item_frame["n_ratings"], mat)]
        items = spark.createDataFrame(rows, [ITEM, "n_ratings", "features"])
        self.vectors = {int(m): v for m, v in zip(item_frame[ITEM], mat)}
        self.model = BucketedRandomProjectionLSH(
            inputCol="features",
            outputCol="hashes",
            bucketLength=bucket_length,
            numHashTables=num_hash_tables,
            seed=seed,
        ).fit(items)
        # Hashed once here, not at every query: a query only hashes its key and compares.
        self.items = self.model.transform(items).cache()
        self.items.count()
        self.build_seconds = time.perf_counter() - started

    def release(self) -> None:
        """Drop the cached hashes (when the model is no longer served)."""
        self.items.unpersist()

    def similar(self, movie_id: int, n: int = 10, min_ratings: int = 10) -> pd.DataFrame:
        """The ``n`` approximate nearest movies (cosine ``score``) with at least ``min_ratings``."""
        from pyspark.ml.linalg import Vectors

        from .serving import UnknownIdError

        if int(movie_id) not in self.vectors:
            raise UnknownIdError(f"Unknown movie id {movie_id!r}: it is not in the model's catalogue.")
        key = Vectors.dense(self.vectors[int(movie_id)])
        pool = self.items.filter((self.items.n_ratings >= min_ratings) & (self.items[ITEM] != int(movie_id)))
        rows = self.model.approxNearestNeighbors(pool, key, n, distCol="distance").select(ITEM, "distance").collect()
        ids = [r[ITEM] for r in rows]
        out = self.movies.reindex(ids)[[TITLE, GENRES, "year"]].reset_index()
        out["score"] = [round(1 - r["distance"] ** 2 / 2, 4) for r in rows]
        out["n_ratings"] = [self.support[i] for i in ids]
        return out.sort_values(["score", ITEM], ascending=[False, True]).reset_index(drop=True)


def load_lsh_index(spark, model_dir: str | Path, **kwargs) -> LSHIndex:
    from .model_tables import read_serving_tables

    tables = read_serving_tables(model_dir, with_ratings=False)  # factors and catalogue only
    return LSHIndex(spark, tables["item_frame"], tables["movies"], **kwargs)


def lsh_similar(spark, model_dir: str | Path, movie_id: int, n: int = 10, min_ratings: int = 10) -> pd.DataFrame:
    """One-shot: fit LSH on a saved model and query one movie."""
    return load_lsh_index(spark, model_dir).similar(movie_id, n, min_ratings)


def recall_at_k(exact: dict, approx: dict) -> float:
    """Mean fraction of each exact top-k list that the approximate list recovers."""
    scores = [len(set(exact[m]) & set(approx.get(m, []))) / len(exact[m]) for m in exact if exact[m]]
    return float(np.mean(scores)) if scores else float("nan")
