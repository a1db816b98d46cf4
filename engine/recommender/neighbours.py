"""Movie neighbours: the item-based part of the predicted stars.

The explicit model (:mod:`engine.recommender.als`) explains a rating by ``mu + b_u + b_i + u.v``. What it
misses, a person's own ratings of the movies most like this one often catch (Koren 2008, "Factorization
meets the neighborhood"): if you rated Heat a star above what the biases expected, you will probably
rate Collateral above them too. So the stars shown blend three predictions (:class:`Blend`):

- the explicit model's ``a = mu + b_u + b_i + u.v``;
- the neighbourhood's ``k = mu + b_u + b_i + sum_j s_ij z_uj / sum_j s_ij``, over the movies ``j`` the
  person rated among movie ``i``'s neighbours (its ``keep`` most similar movies, similarity above 0),
  ``z_uj = r_uj - mu - b_u - b_j`` the rating's distance from the biases (0 when none of them was rated);
- the top-picks score ``p = u'.v'`` of :mod:`engine.recommender.picks` (how likely the person is to watch
  and like the movie: people mostly rate what they chose to see);

``prediction = w0 + wa * a + wk * k + wp * p``, with weights chosen on a validation split carved from
the training split (never on test; ``bench/bench_blend.py`` re-derives them).

The similarity of two movies is the Pearson correlation of their ratings' distances from the biases over
the people who rated both, shrunk towards 0 when few did: ``s_ij = sum z_ui z_uj / sqrt(sum z_ui^2 *
sum z_uj^2) * (n_ij - 1) / (n_ij - 1 + shrinkage)`` (sums over those ``n_ij`` people). Spark computes it
(:func:`movie_neighbours`, a self-join of the training ratings on the user; movies with fewer than
``min_ratings`` training ratings are left out on both sides, which bounds the join); serving reads the
saved table into :class:`NeighbourIndex` and needs no Spark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.movielens import ITEM, RATING, USER

NEIGHBOUR = "neighbourId"
SIMILARITY = "similarity"


@dataclass
class NeighbourConfig:
    """Which neighbours each movie keeps, chosen on the validation split (docs/recommender.md)."""

    #: neighbours kept per movie, the most similar first
    keep: int = 50
    #: pulls the similarity of movies few people rated both of towards 0
    shrinkage: float = 100.0
    #: movies with fewer training ratings are neither neighbours nor have any
    min_ratings: int = 10
    #: the similarities read at most this many of each person's ratings (a fixed hash sample; 0: all):
    #: the self-join has sum(n_u^2)/2 rows, which a few heavy raters would otherwise dominate
    max_user_ratings: int = 200

    def check(self) -> "NeighbourConfig":
        if isinstance(self.keep, bool) or not isinstance(self.keep, (int, np.integer)) or self.keep < 1:
            raise ValueError(f"neighbours keep={self.keep!r}: give a whole number of neighbours, 1 or more.")
        if isinstance(self.shrinkage, bool) or not isinstance(self.shrinkage, (int, float)) or self.shrinkage < 0:
            raise ValueError(f"neighbours shrinkage={self.shrinkage!r}: give a number, 0 or more.")
        if isinstance(self.min_ratings, bool) or not isinstance(self.min_ratings, (int, np.integer)):
            raise ValueError(f"neighbours min_ratings={self.min_ratings!r}: give a whole number.")
        if self.min_ratings < 2:
            raise ValueError(f"neighbours min_ratings={self.min_ratings}: at least 2 (a correlation needs two).")
        cap = self.max_user_ratings
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 0 or cap == 1:
            raise ValueError(f"neighbours max_user_ratings={cap!r}: 0 (all of them) or a whole number from 2.")
        return self


@dataclass(frozen=True)
class Blend:
    """The weights of ``w0 + wa * explicit + wk * neighbourhood + wp * top-picks score``."""

    intercept: float = 0.0
    explicit: float = 1.0
    neighbourhood: float = 0.0
    picks: float = 0.0

    @classmethod
    def of(cls, params: dict | None) -> "Blend | None":
        return None if not params else cls(**{k: float(params[k]) for k in BLEND_WEIGHTS})


BLEND_WEIGHTS = ("intercept", "explicit", "neighbourhood", "picks")
#: Fitted on the validation split carved from split seed 42's training split (hash seed 7), with the
#: default explicit, top-picks and neighbour settings (``bench/bench_blend.py --validate``); docs/recommender.md.
DEFAULT_BLEND = Blend(intercept=-0.004, explicit=0.6321, neighbourhood=0.3318, picks=0.4986)


def movie_neighbours(residuals, cfg: NeighbourConfig):
    """Spark DataFrame (movieId, neighbourId, similarity) of each movie's ``cfg.keep`` most similar movies
    (similarity above 0; ties by neighbour id) from ``residuals`` (userId, movieId, residual: the training
    ratings' distances from the biases)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cfg.check()
    z = residuals.select(USER, ITEM, F.col("residual").cast("double").alias("z"))
    supported = z.groupBy(ITEM).count().filter(F.col("count") >= cfg.min_ratings).select(ITEM)
    z = z.join(F.broadcast(supported), ITEM, "left_semi")
    if cfg.max_user_ratings:
        sample = Window.partitionBy(USER).orderBy(F.xxhash64(USER, ITEM), ITEM)
        z = z.withColumn("_k", F.row_number().over(sample)).filter(F.col("_k") <= cfg.max_user_ratings).drop("_k")
    a = z.select(USER, F.col(ITEM).alias("i"), F.col("z").alias("zi"))
    b = z.select(USER, F.col(ITEM).alias("j"), F.col("z").alias("zj"))
    pairs = (
        a.join(b, USER)
        .filter(F.col("i") < F.col("j"))
        .groupBy("i", "j")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.col("zi") * F.col("zj")).alias("num"),
            F.sum(F.col("zi") * F.col("zi")).alias("si"),
            F.sum(F.col("zj") * F.col("zj")).alias("sj"),
        )
        .filter((F.col("n") >= 2) & (F.col("num") > 0) & (F.col("si") > 0) & (F.col("sj") > 0))
    )
    shrunk = (F.col("n") - 1) / (F.col("n") - 1 + F.lit(float(cfg.shrinkage)))
    similarity = (F.col("num") / F.sqrt(F.col("si") * F.col("sj")) * shrunk).alias(SIMILARITY)
    # Each pair once, then both ways round from the same row: a union of two selects would aggregate
    # the pairs twice (1.9 s instead of 3.5 s warm on ml-latest-small's 389 k pairs).
    both = pairs.select(
        F.explode(
            F.array(
                F.struct(F.col("i").alias(ITEM), F.col("j").alias(NEIGHBOUR), similarity),
                F.struct(F.col("j").alias(ITEM), F.col("i").alias(NEIGHBOUR), similarity),
            )
        ).alias("_pair")
    ).select("_pair.*")
    order = Window.partitionBy(ITEM).orderBy(F.col(SIMILARITY).desc(), F.col(NEIGHBOUR))
    return both.withColumn("_n", F.row_number().over(order)).filter(F.col("_n") <= cfg.keep).drop("_n")


def residuals_of(ratings, model):
    """(userId, movieId, residual) of ``ratings`` from a fitted bias-corrected model's biases."""
    from pyspark.sql import functions as F

    from .als import bias_sum

    joined = ratings.join(F.broadcast(model.item_bias), ITEM, "left").join(F.broadcast(model.user_bias), USER, "left")
    return joined.select(USER, ITEM, (F.col(RATING) - bias_sum(model.mu)).alias("residual"))


def as_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`movie_neighbours` brought to the driver, as saved: typed, each movie's most similar first."""
    table = frame[[ITEM, NEIGHBOUR, SIMILARITY]].astype({ITEM: np.int64, NEIGHBOUR: np.int64, SIMILARITY: np.float64})
    return table.sort_values([ITEM, SIMILARITY, NEIGHBOUR], ascending=[True, False, True], ignore_index=True)


class NeighbourIndex:
    """The neighbours table in memory, by neighbour: for a rated movie (a position in the model's
    movies), the movies that keep it among their neighbours and their similarity to it."""

    def __init__(self, targets: np.ndarray, by_neighbour: np.ndarray, similarity: np.ndarray, n_items: int):
        order = np.argsort(by_neighbour, kind="stable")
        self.indptr = np.searchsorted(by_neighbour[order], np.arange(n_items + 1)).astype(np.int64)
        self.targets = targets[order].astype(np.int32)
        self.similarity = similarity[order].astype(np.float64)
        self.n_items = n_items

    @classmethod
    def from_frame(cls, table: pd.DataFrame, item_ids: np.ndarray) -> "NeighbourIndex":
        """From the saved table; rows naming a movie the model has no factors for are left out."""
        from .serving import id_positions

        i = id_positions(item_ids, table[ITEM].to_numpy(np.int64))
        j = id_positions(item_ids, table[NEIGHBOUR].to_numpy(np.int64))
        known = (i >= 0) & (j >= 0)
        return cls(i[known], j[known], table[SIMILARITY].to_numpy(np.float64)[known], len(item_ids))

    @property
    def n_pairs(self) -> int:
        return len(self.targets)

    def offsets(self, pos: np.ndarray, residuals: np.ndarray) -> np.ndarray:
        """For every movie, ``sum_j s_ij z_j / sum_j s_ij`` over the rated movies ``pos`` (their residuals
        ``z``) among its neighbours; 0 for a movie none of whose neighbours was rated."""
        pos = np.asarray(pos, dtype=np.int64)
        starts, lengths = self.indptr[pos], self.indptr[pos + 1] - self.indptr[pos]
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(self.n_items)
        # the concatenated ranges [start, start + length) of every rated movie
        first = np.cumsum(lengths) - lengths
        idx = np.arange(total) - np.repeat(first - starts, lengths)
        targets, sims = self.targets[idx], self.similarity[idx]
        num = np.bincount(targets, weights=sims * np.repeat(residuals, lengths), minlength=self.n_items)
        den = np.bincount(targets, weights=sims, minlength=self.n_items)
        return np.divide(num, den, out=np.zeros(self.n_items), where=den > 0)


def blend_components(test, model, picks_model, neighbours_df, train):
    """Spark: ``test`` (userId, movieId, rating) with the three predictions the stars blend, unclipped:
    ``explicit`` (the bias-corrected ``model``'s ``mu + b_u + b_i + u.v``), ``neighbourhood`` (``mu + b_u + b_i``
    plus the similarity-weighted mean residual of the user's ``train`` ratings among the movie's
    ``neighbours_df``, Spark as :func:`movie_neighbours`) and ``picks`` (``picks_model``'s score)."""
    from pyspark.sql import functions as F

    from .als import _ALS_PRED, bias_sum

    pairs = test.select(USER, ITEM, RATING)
    explicit = model.als_model.transform(pairs).select(USER, ITEM, RATING, _ALS_PRED)
    z = residuals_of(train, model).withColumnRenamed(ITEM, NEIGHBOUR)
    offset = (
        pairs.select(USER, ITEM)
        .join(neighbours_df.select(ITEM, NEIGHBOUR, SIMILARITY), ITEM)
        .join(z, [USER, NEIGHBOUR])
        .groupBy(USER, ITEM)
        .agg((F.sum(F.col(SIMILARITY) * F.col("residual")) / F.sum(SIMILARITY)).alias("_offset"))
    )
    pick = picks_model.transform(pairs.select(USER, ITEM)).select(USER, ITEM, F.col("prediction").alias("_pick"))
    joined = (
        explicit.join(offset, [USER, ITEM], "left")
        .join(pick, [USER, ITEM], "left")
        .join(F.broadcast(model.item_bias), ITEM, "left")
        .join(F.broadcast(model.user_bias), USER, "left")
    )
    base = bias_sum(model.mu)
    return joined.select(
        USER,
        ITEM,
        RATING,
        (base + F.col(_ALS_PRED)).alias("explicit"),
        (base + F.coalesce("_offset", F.lit(0.0))).alias("neighbourhood"),
        F.coalesce("_pick", F.lit(0.0)).alias("picks"),
    )


def blend_predictions(components, blend: Blend):
    """Spark: :func:`blend_components` with the blended ``prediction``, clipped to the star scale."""
    from pyspark.sql import functions as F

    from .als import clip_rating

    raw = (
        F.lit(blend.intercept)
        + F.lit(blend.explicit) * F.col("explicit")
        + F.lit(blend.neighbourhood) * F.col("neighbourhood")
        + F.lit(blend.picks) * F.col("picks")
    )
    return components.withColumn("prediction", clip_rating(raw))


def fit_blend(components: pd.DataFrame) -> Blend:
    """The least-squares weights of the blend on held-out ratings (pandas :func:`blend_components`): run on
    a validation split carved from the training split, never on test."""
    x = np.column_stack([np.ones(len(components)), *(components[c].to_numpy(float) for c in BLEND_WEIGHTS[1:])])
    weights = np.linalg.lstsq(x, components[RATING].to_numpy(float), rcond=None)[0]
    return Blend(*(round(float(w), 4) for w in weights))
