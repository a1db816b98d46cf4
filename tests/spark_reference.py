"""Spark-side reference top-N: recommendForUserSubset scores plus the model's biases."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F


def spark_top_n(spark, model, users: list[int], rated: dict[int, set], n: int) -> dict[int, list]:
    """user -> [(movieId, score)] ranked by mu + b_u + b_i + (Spark's u.v)."""
    n_items = model.als_model.itemFactors.count()
    subset = spark.createDataFrame([(u,) for u in users], ["userId"])
    recs = (
        model.als_model.recommendForUserSubset(subset, n_items)
        .select("userId", F.explode("recommendations").alias("r"))
        .select("userId", F.col("r.movieId").alias("movieId"), F.col("r.rating").alias("dot"))
        .join(model.item_bias, "movieId", "left")
        .join(model.user_bias, "userId", "left")
        .withColumn(
            "score",
            F.lit(model.mu) + F.coalesce("user_bias", F.lit(0.0)) + F.coalesce("item_bias", F.lit(0.0)) + F.col("dot"),
        )
        .select("userId", "movieId", "score")
        .toPandas()
    )
    return _top_unrated(recs, rated, n)


def _top_unrated(recs, rated: dict[int, set], n: int) -> dict[int, list]:
    """Per user, the ``n`` best (movieId, score) the user has not rated; ties by movieId."""
    out = {}
    for u, g in recs.groupby("userId"):
        g = g[~g["movieId"].isin(rated.get(int(u), set()))]
        g = g.sort_values(["score", "movieId"], ascending=[False, True]).head(n)
        out[int(u)] = list(zip(g["movieId"].astype(int), g["score"].astype(float)))
    return out


def assert_same_ranking(expected: list, got_ids: list, got_scores: list, tol: float = 1e-4) -> None:
    """Same ids in the same order, except swaps between scores closer than ``tol``
    (Spark's dot product is float32, the index's float64)."""
    exp_ids = [m for m, _ in expected]
    exp_scores = np.array([s for _, s in expected])
    np.testing.assert_allclose(np.array(got_scores), exp_scores, atol=tol)
    for pos, (a, b) in enumerate(zip(exp_ids, got_ids)):
        if a != b:
            assert abs(exp_scores[pos] - got_scores[pos]) < tol, (pos, exp_ids, got_ids)
    # the tail may differ only among near-ties at the cut (movies with the same factors, e.g. rated by one
    # person alike, score the same: Spark and the index may keep different ones of them)
    cut = exp_scores[-1]
    assert {m for m, s in zip(exp_ids, exp_scores) if s > cut + tol} <= set(got_ids)
    assert {m for m, s in zip(got_ids, got_scores) if s > cut + tol} <= set(exp_ids)


def spark_pick_top_n(spark, als_model, users: list[int], rated: dict[int, set], n: int) -> dict[int, list]:
    """user -> [(movieId, u.v)] from an implicit ALSModel's recommendForUserSubset."""
    n_items = als_model.itemFactors.count()
    subset = spark.createDataFrame([(u,) for u in users], ["userId"])
    recs = (
        als_model.recommendForUserSubset(subset, n_items)
        .select("userId", F.explode("recommendations").alias("r"))
        .select("userId", F.col("r.movieId").alias("movieId"), F.col("r.rating").alias("score"))
        .toPandas()
    )
    return _top_unrated(recs, rated, n)
