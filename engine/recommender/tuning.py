"""Tune the bias-corrected ALS over a grid by k-fold cross-validation on Spark, and weigh the work for
the time left.

It does what Spark's ``CrossValidator`` does (the same folds, the same RMSE per grid point), and every fit
of every fold still runs as a Spark job, so the same code tunes on a cluster. Two things cost less: the
biases are estimated once per fold for every grid point (:class:`~engine.recommender.als.BiasCorrectedALS`'s
``fitMultiple``), and a fold's models are scored together, :data:`SCORE_BATCH` per Spark query
(:func:`fold_rmses`), where ``CrossValidator`` ran about 8 Spark jobs to score each one. The best point is
then fitted on all of train by :func:`~engine.recommender.training.train_and_evaluate` (``CrossValidator``'s
own refit on train was not used, and is not done).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.movielens import ITEM, RATING, USER, MovieLens
from ..data.spark_release import SparkRelease, as_spark_release
from ..jobs import Pace
from .als import SMALL_FIT_RATINGS, BiasCorrectedALS, bias_sum, check_param, clip_rating
from .training import ALSConfig, Progress, log_progress, ratings_frame, split

DEFAULT_GRID = {"rank": [8, 16, 32], "maxIter": [10, 15, 20], "regParam": [0.05, 0.1, 0.2]}


def check_grid(grid: dict, folds: int) -> None:
    """Refuse a tuning grid or fold count Spark would refuse, each value named (``ValueError``)."""
    unknown = set(grid) - {"rank", "maxIter", "regParam"}
    if unknown:
        raise ValueError(f"Cannot tune {', '.join(sorted(unknown))}: the grid takes rank, maxIter, regParam.")
    for name, values in grid.items():
        if not len(values):
            raise ValueError(f"The grid has no {name} values: give at least one.")
        for value in values:
            check_param(name, value, f"every grid {name}")
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"folds={folds}: cross-validation needs at least 2 folds (a whole number).")


def tune(
    spark,
    data: "SparkRelease | MovieLens",
    grid: dict | None = None,
    folds: int = 5,
    cfg: ALSConfig | None = None,
    progress: Progress = log_progress,
    parallelism: int = 2,
    blocks: int = 0,
) -> dict:
    """k-fold cross-validation over ``grid`` on the train split (``CrossValidator``'s folds); RMSE per
    grid point.

    Every fit is a Spark job, so the same code tunes on a cluster. Per fold, the biases are
    estimated once and shared by the grid's fits (:meth:`BiasCorrectedALS.fitMultiple`), and the
    models are scored in batches (:func:`fold_rmses`);
    ``parallelism`` fits run at once (on 2 cores, 2 hide each other's job overhead). ``blocks``:
    ALS blocks per fit, 0 for one per core (:func:`engine.recommender.als.als_blocks`; Spark's 10 cost a
    task each per stage); it moves CV RMSEs by about 0.001 (the factors' random start), not
    which point is best.
    ``progress`` hears of each fit with the time left at the pace measured so far.

    Returns ``{"table": [{rank, maxIter, regParam, rmse}, ...], "best": {...},
    "folds": k, "seconds": ...}`` with plain numbers, sorted best first.
    """
    from pyspark.ml.tuning import ParamGridBuilder

    cfg = (cfg or ALSConfig()).check()
    grid = grid or DEFAULT_GRID
    check_grid(grid, folds)
    if not isinstance(parallelism, (int, np.integer)) or isinstance(parallelism, bool) or parallelism < 1:
        raise ValueError(f"parallelism={parallelism!r}: give a whole number of fits at once, 1 or more.")
    release = as_spark_release(spark, data)
    train, test = split(ratings_frame(spark, release), cfg)
    test.unpersist()  # tuning sees train only
    # Each scoring query broadcasts its models' factors: a batch of them for small data, one model above.
    small = release.n_ratings is not None and release.n_ratings <= SMALL_FIT_RATINGS
    per_query = SCORE_BATCH if small else 1
    builder = ParamGridBuilder()
    check_param("numBlocks", blocks, "blocks")
    estimator = _ProgressBiasALS(
        userBiasReg=cfg.user_bias_reg,
        itemBiasReg=cfg.item_bias_reg,
        seed=cfg.seed,
        coldStartStrategy="drop",
        numBlocks=blocks,
    )
    for name, values in grid.items():
        builder = builder.addGrid(estimator.getParam(name), list(values))
    maps = builder.build()
    fits = len(maps) * folds
    estimator.track(progress, Pace(grid_units(grid, folds, cfg.max_iter)), total=fits)
    t0 = time.perf_counter()
    scores = np.empty((folds, len(maps)))
    for i, (fold_train, fold_valid) in enumerate(k_folds(train, folds, cfg.seed)):
        fold_train, fold_valid = fold_train.cache(), fold_valid.cache()
        try:
            scores[i] = _fit_and_score(estimator, fold_train, fold_valid, maps, parallelism, per_query)
        finally:
            fold_train.unpersist()
            fold_valid.unpersist()
    seconds = time.perf_counter() - t0
    table = []
    for pmap, score in zip(maps, scores.mean(axis=0)):
        row = {p.name: (int(v) if p.name in ("rank", "maxIter") else float(v)) for p, v in pmap.items()}
        row["rmse"] = round(float(score), 5)
        table.append(row)
    table.sort(key=lambda r: r["rmse"])
    train.unpersist()
    return {
        "table": table,
        "best": {k: v for k, v in table[0].items() if k != "rmse"},
        "best_rmse": table[0]["rmse"],
        "folds": folds,
        "grid": grid,
        "fits": fits,
        "seconds": round(seconds, 1),
        "seconds_per_fit": round(seconds / fits, 2),
        "parallelism": parallelism,
        "blocks": blocks,
    }


_FOLD_RAND = "_fold_rand"


def k_folds(train, folds: int, seed: int):
    """(train, validation) DataFrames of each fold, the ones ``CrossValidator(numFolds=folds, seed=seed)``
    makes: a rating is in fold i's validation when its ``rand(seed)`` is in [i/k, (i+1)/k)."""
    from pyspark.sql import functions as F

    width = 1.0 / folds  # CrossValidator's bounds are i * (1/k), which is not always i/k in floating point
    frame = train.select("*", F.rand(seed).alias(_FOLD_RAND))
    for i in range(folds):
        inside = (F.col(_FOLD_RAND) >= i * width) & (F.col(_FOLD_RAND) < (i + 1) * width)
        yield frame.filter(~inside), frame.filter(inside)


#: Models scored by one Spark query (:func:`fold_rmses`) up to SMALL_FIT_RATINGS ratings. Scoring one model
#: alone took as long as a 1-iteration fit (8 jobs, ~1 s on 2 cores for ml-latest-small, nearly all of it
#: per-job overhead); a batch's models are held until it is scored, and their factors are broadcast (16
#: models of rank 25 on ml-latest-small: ~16 MB). Bigger data scores one model per query.
SCORE_BATCH = 16


def _fit_and_score(estimator, train, validation, maps, parallelism: int, per_query: int) -> list[float]:
    """Validation RMSE of every param map's model on one fold: ``parallelism`` fits at once (each a Spark
    job), scored ``per_query`` models at a time while the next ones fit."""
    fitted = estimator.fitMultiple(train, maps)  # the fold's biases estimated once, for every map
    rmses = [float("nan")] * len(maps)
    scored = None
    with ThreadPoolExecutor(parallelism, thread_name_prefix="tune-fit") as pool:
        # Every fit queued at once, so the pool keeps fitting while this thread scores a finished batch.
        queued = [pool.submit(next, fitted) for _ in maps]
        try:
            for start in range(0, len(maps), per_query):
                batch = [job.result() for job in queued[start : start + per_query]]
                queued[start : start + per_query] = [None] * len(batch)  # the models go once scored
                if scored is None:  # every model of the fold shares its biases
                    scored = with_baseline(batch[0][1], validation).cache()
                for (index, _), value in zip(batch, fold_rmses([model for _, model in batch], scored)):
                    rmses[index] = value
                del batch
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a failed fit or score: no more fits start
            raise
        finally:
            if scored is not None:
                scored.unpersist()
    return rmses


_BASE, _MODEL = "_baseline", "_model"


def with_baseline(model, ratings):
    """``ratings`` with each one's bias prediction (mu + b_user + b_movie, as ``model`` adds them)."""
    from pyspark.sql import functions as F

    return (
        ratings.join(F.broadcast(model.item_bias), ITEM, "left")
        .join(F.broadcast(model.user_bias), USER, "left")
        .select(USER, ITEM, RATING, bias_sum(model.mu).alias(_BASE))
    )


def fold_rmses(models: list, scored) -> list[float]:
    """RMSE of each of ``models`` (one fold's, each a :class:`BiasCorrectedALSModel`) on ``scored``
    (:func:`with_baseline` of the fold's validation ratings), in one Spark query.

    The same figure as ``RegressionEvaluator(metricName="rmse")`` on each model's ``transform`` with
    coldStartStrategy "drop": mu + b_user + b_movie + u.v (the float dot product ALS computes), clipped to
    the rating scale, over the ratings whose user and movie both have factors. Each model's factors are
    broadcast with its number, and every rating is joined with every model's.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    def factors(which: str, key: str, name: str):
        frames = [
            getattr(model.als_model, which).select(
                F.lit(j).alias(_MODEL), F.col("id").alias(key), F.col("features").alias(name)
            )
            for j, model in enumerate(models)
        ]
        return F.broadcast(reduce(lambda a, b: a.unionByName(b), frames))

    dot = F.aggregate(F.zip_with("_u", "_v", lambda a, b: a * b), F.lit(0.0).cast("float"), lambda s, x: s + x)
    error = clip_rating(F.col(_BASE) + dot) - F.col(RATING)
    rows = (
        scored.select("*", F.explode(F.sequence(F.lit(0), F.lit(len(models) - 1))).alias(_MODEL))
        .join(factors("userFactors", USER, "_u"), [_MODEL, USER])
        .join(factors("itemFactors", ITEM, "_v"), [_MODEL, ITEM])
        .groupBy(_MODEL)
        .agg(F.sqrt(F.avg(error * error)).alias("rmse"))
        .collect()
    )
    got = {row[_MODEL]: row["rmse"] for row in rows}
    return [float("nan") if got.get(j) is None else float(got[j]) for j in range(len(models))]


#: The cost of one fit apart from its iterations (jobs to set up, factors to store, the fold's
#: RMSE), in ALS iterations: measured on ml-latest-small (bench/bench_tune.py); it only weighs
#: fits against one another for the time-left estimate, whose pace is measured as it runs.
FIT_OVERHEAD_ITERATIONS = 4


def fit_units(max_iter: int) -> float:
    """Relative cost of one tuning fit (its share of the work in the time-left estimate)."""
    return max_iter + FIT_OVERHEAD_ITERATIONS


def grid_units(grid: dict, folds: int, default_iter: int = 20) -> float:
    """The work of a k-fold grid search in :func:`fit_units`: every point on every fold."""
    iters = grid.get("maxIter") or [default_iter]
    points = int(np.prod([len(v) for k, v in grid.items() if k != "maxIter"]))
    return folds * points * sum(map(fit_units, iters))


class _ProgressBiasALS(BiasCorrectedALS):
    """BiasCorrectedALS that reports each fit, and the time left at the measured pace (for tuning)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Params.copy() is shallow, so every per-fold copy shares this state (a dict).
        self._tracking = {"progress": None}

    def track(self, progress: Progress, pace: Pace, total: int) -> None:
        self._tracking.update(progress=progress, pace=pace, total=total, done=0, lock=threading.Lock())

    def _fit_residuals(self, baseline):
        model = super()._fit_residuals(baseline)
        t = self._tracking
        if t["progress"] is None:
            return model
        g = self.getOrDefault
        with t["lock"]:  # several fits run at once, each in its own thread
            t["done"] += 1
            t["pace"].advance(fit_units(g(self.maxIter)))
            left = t["pace"].describe()
            t["progress"](
                t["pace"].fraction,
                f"fit {t['done']}/{t['total']}: rank {g(self.rank)}, maxIter {g(self.maxIter)}, "
                f"regParam {g(self.regParam)}" + (f" · {left}" if left else ""),
            )
        return model
