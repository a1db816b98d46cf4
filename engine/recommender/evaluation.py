"""Rating and ranking metrics: RMSE (Spark), precision/recall/NDCG/MAP@k (numpy).

Ranking protocol: for every test user, rank all movies seen in training except the
ones the user rated in training; relevant = the user's test movies rated
>= :data:`RELEVANT_RATING`. Users without a relevant test movie are skipped.
"""

from __future__ import annotations

import math

import numpy as np

RELEVANT_RATING = 4.0


def rmse(predictions, label_col: str = "rating", prediction_col: str = "prediction") -> float:
    """Spark RMSE of a predictions DataFrame (NaN predictions must be dropped before)."""
    from pyspark.ml.evaluation import RegressionEvaluator

    return float(
        RegressionEvaluator(metricName="rmse", labelCol=label_col, predictionCol=prediction_col).evaluate(predictions)
    )


def ranking_metrics(recommended: dict, relevant: dict, k: int = 10) -> dict:
    """Mean precision@k, recall@k, NDCG@k and MAP@k over users with relevant items.

    Args:
        recommended: user -> ranked list of item ids (at least k long where possible).
        relevant: user -> set of relevant item ids.

    >>> ranking_metrics({1: [10, 20, 30]}, {1: {20}}, k=2)["precision_at_k"]
    0.5
    """
    precision, recall, ndcg, ap = [], [], [], []
    for user, rel in relevant.items():
        if not rel:
            continue
        recs = list(recommended.get(user, []))[:k]
        hits = np.array([item in rel for item in recs], dtype=float)
        precision.append(hits.sum() / k)
        recall.append(hits.sum() / len(rel))
        discounts = 1.0 / np.log2(np.arange(2, len(recs) + 2))
        ideal = (1.0 / np.log2(np.arange(2, min(len(rel), k) + 2))).sum()
        ndcg.append(float((hits * discounts).sum() / ideal) if ideal else 0.0)
        cum = np.cumsum(hits)
        ap.append(float((hits * cum / np.arange(1, len(recs) + 1)).sum() / min(len(rel), k)))
    n = len(precision)
    mean = lambda xs: round(float(np.mean(xs)), 5) if xs else math.nan
    return {
        "precision_at_k": mean(precision),
        "recall_at_k": mean(recall),
        "ndcg_at_k": mean(ndcg),
        "map_at_k": mean(ap),
        "k": k,
        "users": n,
    }


def relevant_items(
    test_ratings, user_col="userId", item_col="movieId", rating_col="rating", threshold: float = RELEVANT_RATING
) -> dict:
    """user -> set of test movies rated >= threshold (pandas input)."""
    liked = test_ratings[test_ratings[rating_col] >= threshold]
    return {int(u): set(g[item_col].astype(int)) for u, g in liked.groupby(user_col)}
