"""The predicted stars' movie neighbours and blend: Spark's similarities against the formula, serving's
neighbourhood against a loop, and the blend served from numpy against the same blend computed by Spark."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from engine.recommender import neighbours
from engine.recommender.neighbours import (
    DEFAULT_BLEND,
    Blend,
    NeighbourConfig,
    NeighbourIndex,
    blend_components,
    blend_predictions,
    fit_blend,
    movie_neighbours,
)
from engine.recommender.serving import RecommenderIndex
from spark_reference import assert_same_ranking


def _residuals(seed=3, users=40, movies=25, density=0.45):
    rng = np.random.default_rng(seed)
    rows = [
        (u, m, float(np.round(rng.normal(0, 1), 3)))
        for u in range(1, users + 1)
        for m in range(1, movies + 1)
        if rng.random() < density
    ]
    rows += [(1, 99, 0.5), (2, 99, -0.25)]  # a movie two people rated: under min_ratings below
    return pd.DataFrame(rows, columns=["userId", "movieId", "residual"])


def _by_formula(frame: pd.DataFrame, cfg: NeighbourConfig) -> pd.DataFrame:
    """The similarity as docs/recommender.md writes it, pair by pair."""
    counts = frame["movieId"].value_counts()
    frame = frame[frame["movieId"].map(counts) >= cfg.min_ratings]
    wide = frame.pivot(index="userId", columns="movieId", values="residual")
    rows = []
    for i in wide.columns:
        for j in wide.columns:
            both = wide[[i, j]].dropna()
            n = len(both)
            if i == j or n < 2:
                continue
            zi, zj = both[i].to_numpy(), both[j].to_numpy()
            num, den = float(zi @ zj), float(np.sqrt((zi @ zi) * (zj @ zj)))
            if num > 0 and den > 0:
                rows.append((i, j, num / den * (n - 1) / (n - 1 + cfg.shrinkage)))
    out = pd.DataFrame(rows, columns=["movieId", "neighbourId", "similarity"])
    out = out.sort_values(["movieId", "similarity", "neighbourId"], ascending=[True, False, True])
    return out.groupby("movieId").head(cfg.keep).reset_index(drop=True)


def test_spark_similarities_follow_the_formula(spark):
    frame = _residuals()
    cfg = NeighbourConfig(keep=6, shrinkage=10.0, min_ratings=3, max_user_ratings=0)
    got = neighbours.as_table(movie_neighbours(spark.createDataFrame(frame), cfg).toPandas())
    want = _by_formula(frame, cfg)
    assert len(got) == len(want) and 99 not in set(got["movieId"]) | set(got["neighbourId"])
    pd.testing.assert_frame_equal(got[["movieId", "neighbourId"]], want[["movieId", "neighbourId"]], check_dtype=False)
    np.testing.assert_allclose(got["similarity"], want["similarity"], rtol=1e-12)
    assert (got.groupby("movieId").size() <= 6).all() and (got["similarity"] > 0).all()
    # Each person's ratings capped: the first by a hash of (user, movie), as Spark draws them.
    from pyspark.sql import functions as F

    capped = NeighbourConfig(keep=6, shrinkage=10.0, min_ratings=3, max_user_ratings=7)
    got = neighbours.as_table(movie_neighbours(spark.createDataFrame(frame), capped).toPandas())
    counts = frame["movieId"].value_counts()
    hashed = (
        spark.createDataFrame(frame[frame["movieId"].map(counts) >= 3])
        .select("userId", "movieId", "residual", F.xxhash64("userId", "movieId").alias("h"))
        .toPandas()
    )
    sample = hashed.sort_values(["userId", "h", "movieId"]).groupby("userId").head(7)
    assert len(sample) < len(hashed) and sample.groupby("userId").size().max() == 7
    want = _by_formula(sample.drop(columns="h"), replace(capped, min_ratings=0))
    pd.testing.assert_frame_equal(got[["movieId", "neighbourId"]], want[["movieId", "neighbourId"]], check_dtype=False)
    np.testing.assert_allclose(got["similarity"], want["similarity"], rtol=1e-12)
    for bad, message in (
        (dict(max_user_ratings=1), "max_user_ratings=1"),
        (dict(max_user_ratings=-5), "max_user_ratings=-5"),
        (dict(keep=0), "keep=0"),
        (dict(shrinkage=-1), "shrinkage=-1"),
        (dict(min_ratings=1), "at least 2"),
        (dict(keep=True), "keep=True"),
    ):
        with pytest.raises(ValueError, match=message):
            NeighbourConfig(**bad).check()


def test_neighbourhood_offsets_equal_a_loop():
    rng = np.random.default_rng(5)
    n_items = 30
    rows = [(i, j, float(rng.uniform(0.01, 1))) for i in range(n_items) for j in range(n_items) if i != j]
    table = pd.DataFrame(rows, columns=["movieId", "neighbourId", "similarity"]).sample(frac=0.3, random_state=1)
    item_ids = np.arange(n_items, dtype=np.int64) * 10  # ids are not positions
    table[["movieId", "neighbourId"]] *= 10
    index = NeighbourIndex.from_frame(
        pd.concat([table, pd.DataFrame([(10, 9990, 0.5)], columns=table.columns)]), item_ids
    )
    assert index.n_pairs == len(table)  # the row naming a movie without factors is left out
    pos = np.array([3, 7, 8, 20, 29])
    z = rng.normal(0, 1, len(pos))
    got = index.offsets(pos, z)
    sims = {(r.movieId // 10, r.neighbourId // 10): r.similarity for r in table.itertuples()}
    for i in range(n_items):
        pairs = [(sims[(i, j)], zj) for j, zj in zip(pos, z) if (i, j) in sims]
        want = sum(s * zj for s, zj in pairs) / sum(s for s, _ in pairs) if pairs else 0.0
        assert got[i] == pytest.approx(want, abs=1e-12)
    np.testing.assert_array_equal(index.offsets(np.array([], int), np.array([])), np.zeros(n_items))


def test_served_stars_equal_sparks_blend(spark, real_model):
    """The stars served from numpy (an index of the training ratings) equal the blend Spark computes for the
    same people and movies: the explicit model, the neighbourhood over their training ratings, the top picks."""
    _, folder, result = real_model
    params = json.loads((folder / "params.json").read_text())
    assert params["blend"] == {k: getattr(DEFAULT_BLEND, k) for k in params["blend"]}
    metrics = result["metrics"]
    assert metrics["test_rmse"] < metrics["explicit_rmse"] - 0.005  # the blend is the better prediction
    tables = result["tables"]
    train = result["train_ratings"]
    index = RecommenderIndex.from_frames(
        mu=result["model"].mu,
        reg_param=params["reg_param"],
        user_bias_reg=params["user_bias_reg"],
        user_frame=tables["user_factors"],
        item_frame=tables["item_factors"],
        movies=tables["movies"],
        ratings=train,
        pick_user_frame=tables["pick_user_factors"],
        pick_item_frame=tables["pick_item_factors"],
        pick_params=params["picks"],
        neighbour_frame=tables["neighbours"],
        blend_params=params["blend"],
    )
    rng = np.random.default_rng(0)
    users = rng.choice(index.user_ids, 12, replace=False)
    pairs = pd.DataFrame(
        [(int(u), int(m), 0.0) for u in users for m in rng.choice(index.item_ids, 40, replace=False)],
        columns=["userId", "movieId", "rating"],
    )
    pairs_df = spark.createDataFrame(pairs.astype({"userId": "int32", "movieId": "int32", "rating": "float32"}))
    found = spark.createDataFrame(tables["neighbours"])
    train_df = spark.createDataFrame(train.astype({"userId": "int32", "movieId": "int32", "rating": "float32"}))
    parts = blend_components(pairs_df, result["model"], result["picks_model"], found, train_df)
    spark_pred = blend_predictions(parts, DEFAULT_BLEND).toPandas().set_index(["userId", "movieId"])["prediction"]
    with_neighbours = 0
    for u in users:
        ui = index._user(u)
        mine = pairs[pairs["userId"] == u]["movieId"].to_numpy()
        pos = index._positions(mine)
        scan, exact = index._known_scores(ui)
        served = np.clip(exact(pos), 0.5, 5.0)
        np.testing.assert_allclose(served, spark_pred.loc[[(int(u), int(m)) for m in mine]].to_numpy(), atol=1e-6)
        np.testing.assert_allclose(scan[pos], exact(pos), atol=1e-4)  # the float32 scan ranks as float64
        rated_pos, values = index.rated.row(ui)
        offsets = index.neighbours.offsets(rated_pos, values - index._mu_item_bias[rated_pos] - index.user_bias[ui])
        with_neighbours += int((offsets[pos] != 0).sum())
    assert with_neighbours > 50  # the neighbourhood took part, not only the biases
    # A served list in the rating order is Spark's blend ranked: every movie the user did not rate.
    rated = train.groupby("userId")["movieId"].agg(set)
    for u in users[:3]:
        unrated = [int(m) for m in index.item_ids if int(m) not in rated[u]]
        every = pd.DataFrame({"userId": int(u), "movieId": unrated, "rating": 0.0})
        every_df = spark.createDataFrame(every.astype({"userId": "int32", "movieId": "int32", "rating": "float32"}))
        parts = blend_components(every_df, result["model"], result["picks_model"], found, train_df)
        raw = parts.selectExpr(
            "movieId",
            f"{DEFAULT_BLEND.intercept} + {DEFAULT_BLEND.explicit} * explicit"
            f" + {DEFAULT_BLEND.neighbourhood} * neighbourhood + {DEFAULT_BLEND.picks} * picks AS score",
        ).toPandas()
        expected = raw.sort_values(["score", "movieId"], ascending=[False, True]).head(10)
        got = index.recommend(int(u), 10, explain=False)
        assert_same_ranking(
            list(zip(expected["movieId"], expected["score"])), got["movieId"].tolist(), got["score"].tolist()
        )


def test_a_new_user_is_blended_as_the_same_person_known(real_model):
    """Someone new who rated what a known user rated gets that user's neighbourhood term: the same movies,
    the same residuals once their folded-in bias is used; the blend is what their list is ranked by."""
    _, folder, _ = real_model
    index = RecommenderIndex.load(folder)
    assert index.blend == DEFAULT_BLEND and index.neighbours.n_pairs > 10_000
    pos, values = index.rated.row(index._user(414))
    ratings = list(zip(index.item_ids[pos].tolist(), values.tolist()))
    recs = index.recommend_new_user(ratings, n=10, explain=False)
    x, bias = index._solve_user(pos, values)
    pick = index._solve_pick_user(pos, values)
    base = index._mu_item_bias + bias
    want = (
        DEFAULT_BLEND.intercept
        + DEFAULT_BLEND.explicit * (base + index.item_factors @ x)
        + DEFAULT_BLEND.neighbourhood * (base + index.neighbours.offsets(pos, values - base[pos]))
        + DEFAULT_BLEND.picks * (index.pick_item_factors @ pick)
    )
    shown = recs["movieId"].map(dict(zip(index.item_ids, range(len(index.item_ids))))).to_numpy()
    np.testing.assert_allclose(recs["predicted_rating"], np.clip(want[shown], 0.5, 5).round(3), atol=1e-9)
    unrated = np.setdiff1d(np.arange(len(index.item_ids)), pos)
    assert recs["movieId"].iloc[0] == index.item_ids[unrated[np.argmax(want[unrated])]]


def test_the_blend_weights_are_least_squares():
    rng = np.random.default_rng(2)
    parts = pd.DataFrame(rng.normal(3, 1, (500, 3)), columns=["explicit", "neighbourhood", "picks"])
    parts["rating"] = 0.1 + 0.5 * parts["explicit"] + 0.3 * parts["neighbourhood"] + 0.2 * parts["picks"]
    assert fit_blend(parts) == Blend(intercept=0.1, explicit=0.5, neighbourhood=0.3, picks=0.2)
    assert Blend.of(None) is None and Blend.of(
        {"intercept": 1, "explicit": 0, "neighbourhood": 0, "picks": 0}
    ) == Blend(1.0, 0.0, 0.0, 0.0)


def test_no_blend_trains_the_als_alone(spark, small_data):
    """``NO_BLEND`` (what `evaluate` uses for a model saved before the blend): no neighbours are found or
    saved, and the stars are the ALS's, as before."""
    from engine.recommender.training import NO_BLEND, ALSConfig, train_and_evaluate

    cfg = ALSConfig(rank=2, max_iter=2, min_ratings=1)
    result = train_and_evaluate(
        spark, small_data, cfg, progress=lambda f, m: None, compare_baselines=False, blend=NO_BLEND
    )
    assert "neighbours" not in result["tables"] and "blend" not in result["params"]
    metrics = result["metrics"]
    assert metrics["test_rmse"] == metrics["explicit_rmse"] and "neighbours_seconds" not in metrics


def test_a_damaged_neighbours_table_or_blend_is_named(small_model, tmp_path):
    """A model folder whose neighbours or blend weights were tampered with is refused with the file and what
    is wrong, never served with NaN stars."""
    import shutil

    from engine.recommender.model_store import ModelError
    from engine.recommender.model_tables import read_serving_tables

    folder = tmp_path / "model"
    shutil.copytree(small_model[1], folder)
    table = pd.read_parquet(folder / "neighbours.parquet")
    params = json.loads((folder / "params.json").read_text())
    assert "blend" in params and len(read_serving_tables(folder)["neighbour_frame"]) == len(table)
    bad = pd.DataFrame({"movieId": [1, 2], "neighbourId": [2, 1], "similarity": [float("nan"), 0.5]})
    bad.to_parquet(folder / "neighbours.parquet", index=False)
    with pytest.raises(ModelError, match="neighbours.parquet is damaged: column similarity has 1 value"):
        read_serving_tables(folder)
    (folder / "neighbours.parquet").unlink()
    with pytest.raises(ModelError, match="neighbours.parquet is missing"):
        read_serving_tables(folder)
    table.to_parquet(folder / "neighbours.parquet", index=False)
    (folder / "params.json").write_text(json.dumps({**params, "blend": {**params["blend"], "picks": "inf"}}))
    with pytest.raises(ModelError, match="blend.picks"):
        read_serving_tables(folder)
    (folder / "params.json").write_text(json.dumps({**params, "blend": [1, 2]}))
    with pytest.raises(ModelError, match="not its weights"):
        read_serving_tables(folder)
