"""The faster tuning and training keep their results: figures checked to 1e-3 on ml-latest-small.

The speed-up (commit 9854d0b and after: biases once per fold, one ALS block per core for tuning, two fits
at a time) was checked against the code before it on randomSplit's split (docs/benchmarks.md: the same
best point, CV RMSE 0.8691, test RMSE 0.84817). On 2026-12-02 the split became a hash of each rating
(it no longer moves with the partitioning): the figures below were recorded again then, with this code, by
``tune`` and ``train_and_evaluate`` on the shared data (2 cores, ``local[*]``). The tuning grid's CV RMSEs
came out within 0.001 of the old split's (CrossValidator's folds are its own); the test RMSE is that of a
different fifth of the ratings. The before/after times are bench/bench_tune.py's, not asserted here.
"""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

#: A small grid (13 fits) that keeps this test short; the seed's 64-point grid is bench/bench_tune.py's.
GRID = {"rank": [10, 20], "maxIter": [10], "regParam": [0.1, 0.5]}
FOLDS = 3
#: CV RMSE per (rank, maxIter, regParam), recorded 2026-12-02 on the hash split (355 s on a busy machine).
BEFORE_CV = {(10, 10, 0.5): 0.86903, (20, 10, 0.5): 0.86906, (20, 10, 0.1): 0.87488, (10, 10, 0.1): 0.88974}
BEFORE_BEST = {"rank": 10, "maxIter": 10, "regParam": 0.5}
#: The default model (ALSConfig(), split seed 42). Recorded again 2026-12-03, when the defaults became rank 64,
#: 15 iterations, regParam 0.13 (chosen on a validation split, issue 29; rank 16, 20 iterations, regParam 0.1
#: had 0.85706 / 0.86334 / 0.88155 before): the speed work must keep these, the model's settings moved them.
#: Since the 11th session the stars shown are a blend (engine.recommender.neighbours): test_rmse is the blend's,
#: explicit_rmse the ALS's alone (the 0.84463 recorded above).
BEFORE_TEST = {
    "test_rmse": 0.83318,
    "explicit_rmse": 0.84463,
    "bias_baseline_rmse": 0.86334,
    "plain_als_rmse": 0.87103,
}


def test_tuning_finds_the_same_best_point_and_rmse(spark, real_data):
    from engine.recommender.tuning import tune

    messages = []
    result = tune(spark, real_data, GRID, FOLDS, progress=lambda f, m: messages.append(m))
    assert result["best"] == BEFORE_BEST
    assert result["best_rmse"] == pytest.approx(min(BEFORE_CV.values()), abs=1e-3)
    # Tuning fits with one ALS block per core (Spark's 10 before): the factors' random start depends
    # on the blocks, which moves a weakly regularised point's CV RMSE by ~0.001, not the ranking.
    for row in result["table"]:
        key = (row["rank"], row["maxIter"], row["regParam"])
        assert row["rmse"] == pytest.approx(BEFORE_CV[key], abs=2e-3), key
    # the time left is measured, not a constant: said from the first fit on
    assert all(" left" in m for m in messages[:-1]) and len(messages) == result["fits"]


def test_default_model_has_todays_test_rmse(real_model):
    metrics = real_model[2]["metrics"]
    for key, before in BEFORE_TEST.items():
        assert metrics[key] == pytest.approx(before, abs=1e-3), key


def test_fits_up_to_15_iterations_skip_checkpoints_and_give_the_same_predictions(spark, small_data, monkeypatch):
    """A checkpoint changes where Spark keeps the factors, not their values: a 15-iteration fit without
    one predicts what the same fit with one every 10 iterations predicts."""
    from engine.recommender import als, picks
    from engine.recommender.als import BiasCorrectedALS, checkpoint_interval
    from engine.recommender.training import ratings_frame

    assert checkpoint_interval(15) == -1 and checkpoint_interval(20) == checkpoint_interval(16) == 10
    ratings = ratings_frame(spark, small_data)
    est = BiasCorrectedALS(rank=4, maxIter=15, regParam=0.1, seed=42, numBlocks=2)
    without = est.fit(ratings).transform(ratings).select("userId", "movieId", "prediction").toPandas()
    picks_cfg = picks.PicksConfig(rank=4, max_iter=15)  # the top-picks model follows the same rule
    picks_without = picks.export_factors(picks.fit(ratings, picks_cfg))
    monkeypatch.setattr(als, "MAX_ITER_WITHOUT_CHECKPOINT", 10)
    assert checkpoint_interval(15) == 10
    with_checkpoints = est.fit(ratings).transform(ratings).select("userId", "movieId", "prediction").toPandas()
    key = ["userId", "movieId"]
    left, right = (f.sort_values(key, ignore_index=True) for f in (without, with_checkpoints))
    assert len(left) == len(small_data.ratings)
    assert (left["prediction"] == right["prediction"]).all()
    for a, b in zip(picks_without, picks.export_factors(picks.fit(ratings, picks_cfg))):
        pd.testing.assert_frame_equal(a, b)
