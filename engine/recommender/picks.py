"""Top picks: implicit-feedback ALS that orders recommendation lists.

The explicit model (:mod:`engine.recommender.als`) predicts *how many stars* a user would
give a movie, and it does that well (test RMSE 0.85). Ranked by that prediction,
though, a top-10 fills with little-known films predicted at 4.6 stars that the
user would never pick: on the held-out ratings it loses to a plain "most
popular" list (NDCG@10 0.065 vs 0.156).

Top picks answer the other question, *which movies will this user watch and
like next*. Spark's implicit ALS (Hu, Koren & Volinsky 2008) is fitted on each rating's
distance from a ``neutral`` rating, ``d = rating - neutral``: a rating above it says "watched and
liked" (preference 1, confidence ``1 + alpha * d``), one below it "watched and disliked"
(preference 0, confidence ``1 + alpha * |d|``: Spark's own handling of negative implicit
feedback). A movie is scored by the dot product ``u . v``. Same data, same split: NDCG@10 well
above both (README has the numbers). The predicted rating shown next to each pick still comes
from the explicit model. (Models saved before 2026-12-03 have ``neutral`` 0: every rating a "liked".)

Serving never touches Spark: :func:`fold_in` solves the same normal equations
Spark's implicit solver solves for a user, with the item factors fixed::

    (V'V + alpha * sum_i |d_i| v_i v_i' + regParam * n_liked * I) x = sum_{d_i > 0} (1 + alpha * d_i) v_i

(Spark's ``ALS.computeFactors`` with ``implicitPrefs``: ALS-WR scaling of the
regularisation by the user's count of positive entries ``n_liked``.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..data.movielens import ITEM, RATING, USER


@dataclass
class PicksConfig:
    """Implicit ALS hyper-parameters, chosen by NDCG@10 on a validation split carved from the
    training split (hash split seed 7 of split seed 42's train; test untouched), 2026-12-03: ratings
    centred on 3 stars, rank 32, regParam 0.3, alpha 2 (validation NDCG@10 0.203; the earlier
    all-positive rank 32, regParam 0.1, alpha 0.5: 0.187; most popular 0.120; docs/recommender.md)."""

    rank: int = 32
    max_iter: int = 15
    reg_param: float = 0.3
    alpha: float = 2.0
    seed: int = 42
    #: Ratings above this are "liked", below it "disliked" (0: every rating liked, as before 2026-12-03).
    neutral: float = 3.0


def fit(train_df, cfg: PicksConfig | None = None, blocks: int = 0):
    """Spark ``ALSModel`` with ``implicitPrefs`` on (userId, movieId, rating), with ``blocks`` user and
    item blocks (0: Spark's 10)."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from .als import SPARK_BLOCKS, checkpoint_interval

    cfg = cfg or PicksConfig()
    centred = train_df.select(USER, ITEM, (F.col(RATING) - F.lit(float(cfg.neutral))).alias(RATING))
    als = ALS(
        numUserBlocks=blocks or SPARK_BLOCKS,
        numItemBlocks=blocks or SPARK_BLOCKS,
        userCol=USER,
        itemCol=ITEM,
        ratingCol=RATING,
        implicitPrefs=True,
        rank=cfg.rank,
        maxIter=cfg.max_iter,
        regParam=cfg.reg_param,
        alpha=cfg.alpha,
        seed=cfg.seed,
        checkpointInterval=checkpoint_interval(cfg.max_iter),  # 15 iterations: none (same factors)
        coldStartStrategy="nan",
    )
    return als.fit(centred)


def export_factors(model) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(users [userId, f0..], items [movieId, f0..]) as pandas, float32 like Spark."""

    def wide(factors_df, id_name):
        pdf = factors_df.toPandas()
        mat = np.vstack(pdf["features"].to_numpy()).astype(np.float32)
        out = pd.DataFrame(mat, columns=[f"f{i}" for i in range(mat.shape[1])])
        out.insert(0, id_name, pdf["id"].astype(np.int64).to_numpy())
        return out.sort_values(id_name).reset_index(drop=True)

    return wide(model.userFactors, USER), wide(model.itemFactors, ITEM)


def align(frame: pd.DataFrame, id_name: str, ids: np.ndarray) -> np.ndarray:
    """Rows of ``frame``'s factors in the order of ``ids`` (zeros for ids it lacks)."""
    fcols = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    return frame.set_index(id_name)[fcols].reindex(ids).fillna(0.0).to_numpy(np.float64)


def fold_in(
    item_factors: np.ndarray,
    gram: np.ndarray,
    pos: np.ndarray,
    ratings: np.ndarray,
    alpha: float,
    reg_param: float,
    neutral: float = 0.0,
) -> np.ndarray:
    """User vector from the positions and ratings of the movies a person rated.

    ``gram`` is ``item_factors.T @ item_factors`` (computed once per index).
    """
    a, weighted = _normal_equations(item_factors, gram, pos, ratings, alpha, reg_param, neutral)
    return np.linalg.solve(a, weighted.sum(axis=1))


def _normal_equations(item_factors, gram, pos, ratings, alpha, reg_param, neutral=0.0):
    """Spark's implicit system for one user: ``A`` and the columns ``c_j v_j`` of its right side
    (zero for a disliked movie: preference 0)."""
    v = item_factors[pos]
    d = np.asarray(ratings, dtype=np.float64) - neutral
    c1 = alpha * np.abs(d)
    liked = d > 0
    a = gram + (v * c1[:, None]).T @ v + reg_param * int(liked.sum()) * np.eye(gram.shape[0])
    return a, (np.where(liked, 1.0 + c1, 0.0)[:, None] * v).T  # (k, k), (k, n_rated)


def contributions(
    item_factors: np.ndarray,
    gram: np.ndarray,
    pos: np.ndarray,
    ratings: np.ndarray,
    alpha: float,
    reg_param: float,
    targets: np.ndarray,
    neutral: float = 0.0,
) -> np.ndarray:
    """How much each rated movie adds to each target movie's top-picks score.

    The fold-in vector is ``x = A^-1 sum_j c_j v_j`` (see :func:`fold_in`), so a target's
    score ``v_t . x`` splits exactly into ``sum_j c_j v_t' A^-1 v_j``: one term per rated
    movie (Hu, Koren & Volinsky 2008, section 5). Returns (len(targets), len(pos)); each
    row sums to the target's score.
    """
    a, weighted = _normal_equations(item_factors, gram, pos, ratings, alpha, reg_param, neutral)
    return item_factors[targets] @ np.linalg.solve(a, weighted)


def params_of(cfg: PicksConfig) -> dict:
    """What a saved model records about its picks model (params.json ``picks``)."""
    return {**asdict(cfg), "confidence": f"1 + alpha * |{RATING} - neutral|"}
