"""Tune the bias-corrected ALS over a grid with Spark's ``CrossValidator``, and weigh the work for
the time left.

Every fit of every fold runs as a Spark job (so the same code tunes on a cluster); the biases are
estimated once per fold for every grid point (:class:`~engine.recommender.als.BiasCorrectedALS`'s
``fitMultiple``). The best point is then fitted on all of train and evaluated by
:func:`~engine.recommender.training.train_and_evaluate`'s split.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..data.movielens import RATING, MovieLens
from ..data.spark_release import SparkRelease
from ..jobs import Pace
from .als import BiasCorrectedALS, check_param
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
    """k-fold ``CrossValidator`` over ``grid`` on the train split; RMSE per grid point.

    Every fit is a Spark job, so the same code tunes on a cluster. Per fold, the biases are
    estimated once and shared by the grid's fits (:meth:`BiasCorrectedALS.fitMultiple`);
    ``parallelism`` fits run at once (on 2 cores, 2 hide each other's job overhead). ``blocks``:
    ALS blocks per fit, 0 for one per core (:func:`engine.recommender.als.als_blocks`; Spark's 10 cost a
    task each per stage); it moves CV RMSEs by about 0.001 (the factors' random start), not
    which point is best.
    ``progress`` hears of each fit with the time left at the pace measured so far.

    Returns ``{"table": [{rank, maxIter, regParam, rmse}, ...], "best": {...},
    "folds": k, "seconds": ...}`` with plain numbers, sorted best first.
    """
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    cfg = (cfg or ALSConfig()).check()
    grid = grid or DEFAULT_GRID
    check_grid(grid, folds)
    if not isinstance(parallelism, (int, np.integer)) or isinstance(parallelism, bool) or parallelism < 1:
        raise ValueError(f"parallelism={parallelism!r}: give a whole number of fits at once, 1 or more.")
    train, test = split(ratings_frame(spark, data), cfg)
    test.unpersist()  # tuning sees train only
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
    # CrossValidator fits every grid point on every fold, then the best one on all of train.
    estimator.track(progress, Pace(grid_units(grid, folds, cfg.max_iter)), total=len(maps) * folds + 1)
    cv = CrossValidator(
        estimator=estimator,
        estimatorParamMaps=maps,
        numFolds=folds,
        seed=cfg.seed,
        evaluator=RegressionEvaluator(metricName="rmse", labelCol=RATING),
        parallelism=parallelism,
    )
    t0 = time.perf_counter()
    cv_model = cv.fit(train)
    seconds = time.perf_counter() - t0
    table = []
    for pmap, score in zip(maps, cv_model.avgMetrics):
        row = {p.name: (int(v) if p.name in ("rank", "maxIter") else float(v)) for p, v in pmap.items()}
        row["rmse"] = round(float(score), 5)
        table.append(row)
    table.sort(key=lambda r: r["rmse"])
    train.unpersist()
    fits = len(maps) * folds + 1
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


#: The cost of one fit apart from its iterations (jobs to set up, factors to store, the fold's
#: RMSE), in ALS iterations: measured on ml-latest-small (bench/bench_tune.py); it only weighs
#: fits against one another for the time-left estimate, whose pace is measured as it runs.
FIT_OVERHEAD_ITERATIONS = 4


def fit_units(max_iter: int) -> float:
    """Relative cost of one tuning fit (its share of the work in the time-left estimate)."""
    return max_iter + FIT_OVERHEAD_ITERATIONS


def grid_units(grid: dict, folds: int, default_iter: int = 20) -> float:
    """The work of a k-fold grid search in :func:`fit_units`: every point on every fold, then the
    best on all of train (counted at the grid's largest maxIter)."""
    iters = grid.get("maxIter") or [default_iter]
    points = int(np.prod([len(v) for k, v in grid.items() if k != "maxIter"]))
    return folds * points * sum(map(fit_units, iters)) + fit_units(max(iters))


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
        with t["lock"]:  # CrossValidator may run several fits at once, each in its own thread
            t["done"] += 1
            t["pace"].advance(fit_units(g(self.maxIter)))
            left = t["pace"].describe()
            t["progress"](
                t["pace"].fraction,
                f"fit {t['done']}/{t['total']}: rank {g(self.rank)}, maxIter {g(self.maxIter)}, "
                f"regParam {g(self.regParam)}" + (f" · {left}" if left else ""),
            )
        return model
