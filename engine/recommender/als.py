"""Bias-corrected ALS on Spark: global mean + regularised biases + ALS on the residuals.

Plain explicit ALS models the whole rating with the dot product of two factor
vectors, so much of its capacity goes into "this user rates high" and "this movie
is liked by everyone". Taking those effects out first (Koren's baseline
predictor) and factorising only what is left is what moves ml-latest-small from
RMSE ~0.88 to ~0.85.

:class:`BiasCorrectedALS` is a real Spark ML ``Estimator``, so cross-validation
re-estimates the biases inside every fold (no leakage from the held-out fold). The biases
depend on the fold only, not on rank, maxIter or regParam: ``fitMultiple`` (what
tuning calls once per fold, as ``CrossValidator`` would) estimates them once per fold and fits every grid
point's ALS on the same cached residuals, each fit still a Spark job.

Example:
    >>> est = BiasCorrectedALS(rank=10, maxIter=10, regParam=0.1)  # doctest: +SKIP
    >>> model = est.fit(train_df)                                    # doctest: +SKIP
    >>> model.transform(test_df).select("prediction")                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import numbers
import threading

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.base import _FitMultipleIterator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..data.movielens import ITEM, MAX_RATING, MIN_RATING, RATING, USER

log = logging.getLogger(__name__)

PREDICTION = "prediction"
_RESIDUAL, _ALS_PRED = "_residual", "_als_prediction"

_INT32, _INT64 = 2**31 - 1, 2**63 - 1
#: name -> (kind, lowest, lowest allowed?) of every hyper-parameter Spark's ALS would refuse
#: with an IllegalArgumentException, or accept and fail on: maxIter 0 returns a model never
#: fitted; regParam 0 ends in a SingularMatrixException at any user or movie with fewer
#: ratings than the rank.
_RULES = {
    "rank": (int, 1, True),
    "maxIter": (int, 1, True),
    "regParam": (float, 0.0, False),
    "userBiasReg": (float, 0.0, True),
    "itemBiasReg": (float, 0.0, True),
    "alpha": (float, 0.0, False),
    "seed": (int, -_INT64 - 1, True),
    "numBlocks": (int, 0, True),
}


def check_param(name: str, value, label: str | None = None) -> None:
    """Refuse a hyper-parameter Spark would refuse (or misuse), with a message naming it.

    ``name`` is Spark's (rank, maxIter, regParam, userBiasReg, itemBiasReg, alpha, seed);
    ``label`` is how the message calls it (default ``name``). Raises ``ValueError`` such
    as "rank must be an integer from 1 to 2,147,483,647 (got 0)."
    """
    kind, low, inclusive = _RULES[name]
    if kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        high = _INT64 if name == "seed" else _INT32
        ok = ok and low <= value <= high
        rule = "an integer that fits in 64 bits" if name == "seed" else f"an integer from {low} to {high:,}"
    else:
        ok = (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value >= low if inclusive else value > low)
        )
        rule = f"a finite number {'>=' if inclusive else '>'} {low:g}"
    if not ok:
        why = (
            " (with 0, ALS fails on users or movies with fewer ratings than the rank)"
            if name == "regParam" and value == 0
            else ""
        )
        raise ValueError(f"{label or name} must be {rule} (got {value!r}){why}.")


class _BiasALSParams(Params):
    rank = Param(Params._dummy(), "rank", "rank of the factorisation", TypeConverters.toInt)
    maxIter = Param(Params._dummy(), "maxIter", "ALS iterations", TypeConverters.toInt)
    regParam = Param(Params._dummy(), "regParam", "ALS regularisation", TypeConverters.toFloat)
    userBiasReg = Param(Params._dummy(), "userBiasReg", "user-bias shrinkage", TypeConverters.toFloat)
    itemBiasReg = Param(Params._dummy(), "itemBiasReg", "movie-bias shrinkage", TypeConverters.toFloat)
    seed = Param(Params._dummy(), "seed", "random seed", TypeConverters.toInt)
    coldStartStrategy = Param(Params._dummy(), "coldStartStrategy", "'nan' or 'drop'", TypeConverters.toString)
    numBlocks = Param(Params._dummy(), "numBlocks", "ALS user and item blocks (0: the session's)", TypeConverters.toInt)

    def __init__(self):
        super().__init__()
        self._setDefault(
            rank=32,
            maxIter=20,
            regParam=0.1,
            userBiasReg=5.0,
            itemBiasReg=5.0,
            seed=42,
            coldStartStrategy="nan",
            numBlocks=0,
        )


class BiasCorrectedALS(Estimator, _BiasALSParams):
    """Estimator: ratings (userId, movieId, rating) -> :class:`BiasCorrectedALSModel`."""

    @keyword_only
    def __init__(
        self,
        *,
        rank=None,
        maxIter=None,
        regParam=None,
        userBiasReg=None,
        itemBiasReg=None,
        seed=None,
        coldStartStrategy=None,
        numBlocks=None,
    ):
        super().__init__()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _fit(self, dataset: DataFrame) -> "BiasCorrectedALSModel":
        self._check()
        baseline = _Baseline.fit(dataset, self.getOrDefault(self.userBiasReg), self.getOrDefault(self.itemBiasReg))
        try:
            return self._fit_residuals(baseline)
        finally:
            baseline.release()

    def fit_baseline(self, dataset: DataFrame) -> "_Baseline":
        """:meth:`fit`'s first step alone: mu and the shrunk biases, computed and cached now (work that
        needs only them can start), and the residuals the ALS fits. :meth:`fit_on_baseline` is the second
        step; ``release()`` the baseline after it."""
        self._check()
        baseline = _Baseline.fit(dataset, self.getOrDefault(self.userBiasReg), self.getOrDefault(self.itemBiasReg))
        baseline.user_bias.count()  # computes (and caches) the item biases it is built on too
        return baseline

    def fit_on_baseline(self, baseline: "_Baseline") -> "BiasCorrectedALSModel":
        """:meth:`fit`'s second step: the ALS on ``baseline``'s residuals (:meth:`fit_baseline`)."""
        self._check()
        return self._fit_residuals(baseline)

    def fitMultiple(self, dataset: DataFrame, paramMaps):
        """One model per param map (thread-safe, as ``CrossValidator(parallelism=...)`` needs), the
        biases estimated once per (userBiasReg, itemBiasReg) and shared by every fit on ``dataset``."""
        estimator = self.copy()
        baselines: dict[tuple, _Baseline] = {}
        lock, left = threading.Lock(), [len(paramMaps)]

        def fit_one(index: int) -> "BiasCorrectedALSModel":
            est = estimator.copy(paramMaps[index])
            est._check()
            key = (est.getOrDefault(est.userBiasReg), est.getOrDefault(est.itemBiasReg))
            with lock:  # the first fit of a key estimates its biases; the others wait for them
                if key not in baselines:
                    baselines[key] = _Baseline.fit(dataset, *key)
            try:
                return est._fit_residuals(baselines[key])
            finally:
                with lock:
                    left[0] -= 1
                    if not left[0]:
                        for baseline in baselines.values():
                            baseline.release()

        return _FitMultipleIterator(fit_one, len(paramMaps))

    def _check(self) -> None:
        for name in ("rank", "maxIter", "regParam", "userBiasReg", "itemBiasReg", "seed", "numBlocks"):
            check_param(name, self.getOrDefault(getattr(self, name)))

    def _fit_residuals(self, baseline: "_Baseline") -> "BiasCorrectedALSModel":
        """ALS on the residuals of ``baseline``, and the model that adds the biases back."""
        g = self.getOrDefault
        blocks = g(self.numBlocks) or als_blocks(baseline.residual.sparkSession)
        als = ALS(
            userCol=USER,
            itemCol=ITEM,
            ratingCol=_RESIDUAL,
            rank=g(self.rank),
            maxIter=g(self.maxIter),
            regParam=g(self.regParam),
            seed=g(self.seed),
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            coldStartStrategy="nan",
            checkpointInterval=checkpoint_interval(g(self.maxIter)),
        )
        als.setPredictionCol(_ALS_PRED)
        als_model = als.fit(baseline.residual)
        model = BiasCorrectedALSModel(baseline.mu, baseline.user_bias, baseline.item_bias, als_model)
        return self._copyValues(model)


#: ALS checkpoints its factors every this many iterations: long lineages (>= 20 iterations)
#: overflow the JVM stack without it; the checkpoint dir is set by :func:`engine.spark.get_spark`.
CHECKPOINT_INTERVAL = 10
#: Fits of at most this many iterations are not checkpointed: their lineage is short enough, and a
#: checkpoint (factors written to disk, an extra job) cost ~10 % of a tuning fit (2.66 against 2.95 s per
#: fit on ml-latest-small, maxIter 5/10/15). Checkpoints change no value, only where Spark keeps them.
MAX_ITER_WITHOUT_CHECKPOINT = 15


def checkpoint_interval(max_iter: int) -> int:
    """ALS's checkpointInterval for a fit of ``max_iter`` iterations (-1: none)."""
    return CHECKPOINT_INTERVAL if max_iter > MAX_ITER_WITHOUT_CHECKPOINT else -1


#: Up to this many ratings an ALS fit is mostly Spark's per-task overhead, and SMALL_FIT_BLOCKS user and item
#: blocks fit it fastest: the default train + evaluate on ml-latest-small (3 ALS fits) took 14.6 s warm with 2
#: blocks against 33.7 s with Spark's 10 (2 cores), test RMSE 0.85755 against 0.85706 (the factors' random
#: start depends on the blocks). Bigger data keeps Spark's 10 (the 25 M figures were measured with them).
SMALL_FIT_RATINGS = 2_000_000
SMALL_FIT_BLOCKS = 2
SPARK_BLOCKS = 10


def blocks_for(spark, n_ratings: int | None) -> int:
    """ALS blocks for a fit of ``n_ratings`` ratings: ``spark.recommender.alsBlocks`` when set, else
    :data:`SMALL_FIT_BLOCKS` up to :data:`SMALL_FIT_RATINGS` ratings, else Spark's 10 (also when the
    count is unknown). It depends on the data, not on the machine: a model trained on a laptop and one
    trained on a cluster from the same data get the same factors."""
    configured = _configured_blocks(spark)
    if configured > 0:
        return configured
    return SMALL_FIT_BLOCKS if n_ratings is not None and n_ratings <= SMALL_FIT_RATINGS else SPARK_BLOCKS


def als_blocks(spark) -> int:
    """ALS user/item blocks for this session: ``spark.recommender.alsBlocks`` when set (e.g. in
    ``SPARK_CONF``), else the session's default parallelism (its cores). Spark's default of 10
    suits a cluster; on 2 cores each block is a task whose overhead outweighs its arithmetic."""
    configured = _configured_blocks(spark)
    return configured if configured > 0 else max(1, spark.sparkContext.defaultParallelism)


def _configured_blocks(spark) -> int:
    """``spark.recommender.alsBlocks`` of the session (0: not set)."""
    return int(spark.conf.get("spark.recommender.alsBlocks", "0") or 0)


class _Baseline:
    """mu and the shrunk biases of one ratings set, and its cached residuals for ALS."""

    def __init__(self, mu, item_bias, user_bias, residual, ratings):
        self.mu, self.item_bias, self.user_bias = mu, item_bias, user_bias
        self.residual, self._ratings = residual, ratings

    @classmethod
    def fit(cls, dataset: DataFrame, user_reg: float, item_reg: float) -> "_Baseline":
        ratings = dataset.select(USER, ITEM, RATING).cache()
        mu, item_bias, user_bias = fit_biases(ratings, user_reg, item_reg)
        residual = (
            ratings.join(F.broadcast(item_bias), ITEM, "left")
            .join(F.broadcast(user_bias), USER, "left")
            .select(
                USER,
                ITEM,
                (
                    F.col(RATING)
                    - F.lit(mu)
                    - F.coalesce("item_bias", F.lit(0.0))
                    - F.coalesce("user_bias", F.lit(0.0))
                ).alias(_RESIDUAL),
            )
            .cache()
        )
        return cls(mu, item_bias, user_bias, residual, ratings)

    def release(self) -> None:
        """Drop the cached ratings and residuals (the biases stay: the models use them)."""
        self.residual.unpersist()
        self._ratings.unpersist()


class BiasCorrectedALSModel(Model, _BiasALSParams):
    """mu + b_user + b_movie + u.v, clipped to the rating scale."""

    def __init__(
        self,
        mu: float = 0.0,
        user_bias: DataFrame | None = None,
        item_bias: DataFrame | None = None,
        als_model: ALSModel | None = None,
    ):
        super().__init__()
        self.mu, self.user_bias, self.item_bias, self.als_model = mu, user_bias, item_bias, als_model

    def _transform(self, dataset: DataFrame) -> DataFrame:
        out = self.als_model.transform(dataset)
        out = out.join(F.broadcast(self.item_bias), ITEM, "left").join(F.broadcast(self.user_bias), USER, "left")
        raw = bias_sum(self.mu) + F.col(_ALS_PRED)
        out = out.withColumn(PREDICTION, clip_rating(raw))
        out = out.drop(_ALS_PRED, "user_bias", "item_bias")
        if self.getOrDefault(self.coldStartStrategy) == "drop":
            out = out.dropna(subset=[PREDICTION])
        return out


def bias_sum(mu: float):
    """mu + b_user + b_movie over rows joined with the ``user_bias`` and ``item_bias`` tables (0 for a
    user or movie without one): the baseline every prediction of the bias-corrected model starts from."""
    return F.lit(mu) + F.coalesce("user_bias", F.lit(0.0)) + F.coalesce("item_bias", F.lit(0.0))


def clip_rating(col):
    """Clip to the rating scale, keeping NaN (cold start) as NaN.

    Spark orders NaN above every number, so a bare ``least(5, greatest(0.5, NaN))``
    would turn an unknown movie into a confident 5.0.
    """
    return F.when(F.isnan(col), col).otherwise(F.least(F.lit(MAX_RATING), F.greatest(F.lit(MIN_RATING), col)))


def fit_biases(ratings: DataFrame, user_reg: float, item_reg: float):
    """Global mean and shrunk biases: b_i = sum(r - mu) / (n_i + item_reg), then b_u likewise.

    Returns ``(mu, item_bias_df[movieId, item_bias], user_bias_df[userId, user_bias])``.
    """
    mu = float(ratings.agg(F.avg(RATING)).first()[0])
    item_bias = (
        ratings.groupBy(ITEM).agg((F.sum(F.col(RATING) - mu) / (F.count("*") + item_reg)).alias("item_bias")).cache()
    )
    user_bias = (
        ratings.join(item_bias, ITEM)
        .groupBy(USER)
        .agg((F.sum(F.col(RATING) - mu - F.col("item_bias")) / (F.count("*") + user_reg)).alias("user_bias"))
        .cache()
    )
    return mu, item_bias, user_bias


def bias_baseline_predictions(mu: float, item_bias: DataFrame, user_bias: DataFrame, test: DataFrame) -> DataFrame:
    """Predictions of the bias-only model (mu + b_u + b_i), the baseline in reports."""
    return (
        test.join(F.broadcast(item_bias), ITEM, "left")
        .join(user_bias, USER, "left")
        .withColumn(PREDICTION, clip_rating(bias_sum(mu)))
    )


def plain_als(rank: int, max_iter: int, reg_param: float, seed: int, blocks: int = SPARK_BLOCKS) -> ALS:
    """Spark's own explicit ALS on raw ratings, the comparison model (``blocks`` user and item blocks)."""
    for name, value in (("rank", rank), ("maxIter", max_iter), ("regParam", reg_param), ("seed", seed)):
        check_param(name, value)
    check_param("numBlocks", blocks, "blocks")
    return ALS(
        numUserBlocks=blocks or SPARK_BLOCKS,
        numItemBlocks=blocks or SPARK_BLOCKS,
        userCol=USER,
        itemCol=ITEM,
        ratingCol=RATING,
        rank=rank,
        maxIter=max_iter,
        regParam=reg_param,
        seed=seed,
        coldStartStrategy="drop",
        checkpointInterval=checkpoint_interval(max_iter),
    )
