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


#: The ranking metrics' key prefix for each ranker of :func:`engine.recommender.training.evaluate_ranking`: the explicit model's
#: predicted-rating order (with the support filter), the app's default order (top picks), most popular.
RANKER_KEYS = {"model": "rating_order", "picks": "top_picks", "popularity": "popularity"}
#: Keys named before they said which ranker (``ndcg_at_10`` was the rating order's, not the app's default
#: order): still written, with the same values, until the release after 2027-06; ``deprecated_keys`` in
#: the metrics maps each to its new name.
OLD_RANKER_KEYS = {"model": "", "picks": "picks_"}


def ranking_keys(ranking: dict, k: int) -> dict:
    """The flat metrics of :func:`engine.recommender.training.evaluate_ranking`'s result: ``{ranker}_{metric}_at_{k}`` for each of
    :data:`RANKER_KEYS`, the old names of :data:`OLD_RANKER_KEYS` beside them, and ``deprecated_keys``."""
    out, old_names = {}, {}
    for ranker, prefix in RANKER_KEYS.items():
        for metric in ("precision", "recall", "ndcg", "map"):
            name = f"{prefix}_{metric}_at_{k}"
            out[name] = ranking[ranker][f"{metric}_at_k"]
            if ranker in OLD_RANKER_KEYS:
                old_names[f"{OLD_RANKER_KEYS[ranker]}{metric}_at_{k}"] = name
    out.update({old: out[new] for old, new in old_names.items()})
    out["deprecated_keys"] = old_names
    return out


def ranking_metric(metrics: dict, ranker: str, metric: str = "ndcg", k: int = 10) -> float | None:
    """One ranking figure of saved ``metrics`` by its new name, else its old one (models saved before
    the keys said which ranker); None when the model has neither (saved before top picks)."""
    new = f"{RANKER_KEYS[ranker]}_{metric}_at_{k}"
    old = f"{OLD_RANKER_KEYS.get(ranker, RANKER_KEYS[ranker] + '_')}{metric}_at_{k}"
    return metrics.get(new, metrics.get(old))
