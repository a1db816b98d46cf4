"""Top picks' EASE (engine/recommender/ease.py): Spark's Gram, the closed form, the served order, fold-in,
explanations and a tampered model folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from engine.recommender import ease
from engine.recommender.model_store import ModelError
from engine.recommender.model_tables import read_serving_tables
from engine.recommender.serving import RecommenderIndex


@pytest.fixture(scope="module")
def small_index(small_model):
    return RecommenderIndex.load(small_model[1])


def _numpy_gram(train: pd.DataFrame, cfg: ease.EaseConfig) -> tuple[np.ndarray, np.ndarray]:
    """The Gram as the docstring defines it, written out in pandas and numpy."""
    counts = train.groupby("movieId").size()
    counts = counts[counts >= cfg.min_ratings].reset_index(name="n")
    counts = counts.sort_values(["n", "movieId"], ascending=[False, True]).head(cfg.max_movies)
    ids = np.sort(counts["movieId"].to_numpy(np.int64))
    users = np.sort(train["userId"].unique())
    x = np.zeros((len(users), len(ids)))
    inside = train[train["movieId"].isin(ids)]
    for u, m, r in inside[["userId", "movieId", "rating"]].itertuples(index=False):
        w = cfg.liked if r >= 4 else cfg.middle if r >= 3 else cfg.disliked
        x[np.searchsorted(users, u), np.searchsorted(ids, m)] = w
    return ids, x.T @ x


@pytest.mark.spark
@pytest.mark.parametrize("min_ratings,max_movies", [(1, 5000), (3, 25)])
def test_sparks_gram_is_x_transpose_x(spark, small_model, min_ratings, max_movies):
    train = small_model[2]["train_ratings"]
    cfg = ease.EaseConfig(min_ratings=min_ratings, max_movies=max_movies)
    ids, g = ease.gram(spark.createDataFrame(train), cfg)
    want_ids, want = _numpy_gram(train, cfg)
    assert ids.tolist() == want_ids.tolist()
    assert len(ids) == min(max_movies, int((train.groupby("movieId").size() >= min_ratings).sum()))
    np.testing.assert_allclose(g, want, rtol=0, atol=1e-12)
    back_ids, back = ease.from_table(ease.as_table(ids, g))  # as saved, and read back
    assert back_ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(back, g)


def test_weights_are_each_movies_ridge_regression_on_the_others():
    """B's closed form against its definition: column j is the ridge regression of movie j's column of X on
    every other movie's column (penalty lam), solved directly."""
    rng = np.random.default_rng(0)
    x = (rng.random((60, 12)) < 0.3) * rng.choice([1.0, 0.5, -0.2], (60, 12))
    g, lam = x.T @ x, 7.0
    b = ease.weights(g, lam)
    assert np.all(np.diag(b) == 0)
    for j in range(12):
        others = [i for i in range(12) if i != j]
        a = x[:, others]
        direct = np.linalg.solve(a.T @ a + lam * np.eye(11), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], direct, rtol=1e-9, atol=1e-12)


def _expected_order(index: RecommenderIndex, pick_vector: np.ndarray, pos: np.ndarray, values: np.ndarray):
    """The top-picks score of every movie from the formula, in float64 from the saved arrays."""
    e_model, cfg = index.ease, index.ease.cfg
    p = index.pick_item_factors @ pick_vector
    n = len(e_model.positions)
    w = np.zeros(n)
    cols = e_model.column[pos]
    w[cols[cols < n]] = ease.weights_of(values[cols < n], cfg)
    e = w @ e_model.b[:n, :n].astype(np.float64)
    score = (1 - cfg.share) * (p - p.mean()) / p.std()
    score[e_model.positions] += cfg.share * (e - e.mean()) / e.std()
    return score


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
def test_served_top_picks_are_the_written_blend(real_model):
    _, path, result = real_model
    index = RecommenderIndex.load(path)
    assert index.ease is not None and index.ease.cfg == ease.EaseConfig()
    assert (index.item_support[index.ease.positions] >= ease.EaseConfig().min_ratings).all()
    for user in [575, 232, 1, 414, 610]:
        u = index._user(user)
        pos, values = index.rated.row(u)
        score = _expected_order(index, index.pick_user_factors[u], pos, values)
        score[pos] = -np.inf
        want = index.item_ids[np.argsort(-score, kind="stable")[:10]]
        got = index.recommend(user, 10, explain=False, order="picks", min_predicted=None)
        assert got["movieId"].tolist() == want.tolist(), user
        np.testing.assert_allclose(got["score"], np.sort(score)[::-1][:10], rtol=0, atol=1e-6)
    # the implicit model alone (the order of models saved before EASE) is a different list
    plain = replace(index, ease=None).recommend(575, 10, explain=False, order="picks", min_predicted=None)
    assert (
        plain["movieId"].tolist()
        != index.recommend(575, 10, explain=False, order="picks", min_predicted=None)["movieId"].tolist()
    )


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
def test_a_new_person_with_a_users_ratings_gets_that_users_top_picks(real_model):
    """Someone new who rates what a known user rated in training gets that user's top picks, scores and
    explanations: EASE reads the same ratings, and the implicit fold-in solves Spark's own equations."""
    _, path, result = real_model
    tables = read_serving_tables(path)
    tables["ratings"] = result["train_ratings"]  # what the users' vectors were fitted to
    index = RecommenderIndex.from_frames(**tables)
    for user in [575, 232, 414]:
        pos, values = index.rated.row(index._user(user))
        pairs = list(zip(index.item_ids[pos].tolist(), values.tolist()))
        known = index.recommend(user, 10, order="picks")
        folded = index.recommend_new_user(pairs, 10, order="picks")
        assert folded["movieId"].tolist() == known["movieId"].tolist()
        np.testing.assert_allclose(folded["score"], known["score"], atol=1e-5)
        assert folded["because"].tolist() == known["because"].tolist()
        assert all(len(why) > 0 for why in known["because"])


@pytest.mark.spark
def test_pick_explanations_split_the_blended_score(small_model, small_index):
    assert small_index.ease is not None, "the generated release has movies with 10 ratings or more"
    train = small_model[2]["train_ratings"]
    user, rows = list(train.groupby("userId"))[3]
    pairs = list(zip(rows["movieId"].astype(int), rows["rating"].astype(float)))
    pos, values = small_index._check_ratings(pairs)
    pick_vector = small_index.pick_fold_in(pairs)
    scan, exact, scales = small_index._pick_scores(pick_vector, (pos, values))
    targets = np.setdiff1d(np.arange(len(small_index.item_ids)), pos)[:40]
    parts = small_index.pick_contributions(targets, (pos, values), scales)
    assert parts.shape == (len(targets), len(pos))
    # each row sums to the target's score up to the two per-person means (one constant for EASE's movies,
    # another for the rest)
    offset = exact(targets) - parts.sum(axis=1)
    inside = small_index.ease.column[targets] < len(small_index.ease.positions)
    assert inside.any() and (~inside).any()
    for group in (inside, ~inside):
        np.testing.assert_allclose(offset[group], offset[group][0], atol=1e-9)
    np.testing.assert_allclose(scan[targets], exact(targets), atol=1e-4)


def _copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


@pytest.mark.spark
def test_a_model_without_ease_ranks_by_the_implicit_model(small_model, small_index, tmp_path):
    """Models saved before EASE (no "ease" in params.json, no Gram) still serve, ordered as they were."""
    folder = _copy(small_model[1], tmp_path)
    params = json.loads((folder / "params.json").read_text())
    del params["ease"]
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "ease_gram.parquet").unlink()
    old = RecommenderIndex.load(folder)
    assert old.ease is None
    user = int(old.user_ids[0])
    got = old.recommend(user, 10, explain=False, order="picks", min_predicted=None)
    u = old._user(user)
    score = old.pick_item_factors @ old.pick_user_factors[u]
    score[old.rated.row(u)[0]] = -np.inf
    assert got["movieId"].tolist() == old.item_ids[np.argsort(-score, kind="stable")[:10]].tolist()


@pytest.mark.spark
@pytest.mark.parametrize(
    "damage,expected",
    [
        ("missing", "ease_gram.parquet is missing"),
        ("nan", "ease_gram.parquet is damaged: column value has 1 value(s) that are NaN or infinite"),
        ("below", "entries below the diagonal"),
        ("unknown movie", "which has no factors in this model"),
        ("share", "has settings EASE cannot use"),
        ("lam", "has ease.lam = 'big', not a finite number"),
    ],
)
def test_a_tampered_ease_is_refused_with_the_file_and_the_fault(small_model, tmp_path, damage, expected):
    folder = _copy(small_model[1], tmp_path)
    table = folder / "ease_gram.parquet"
    frame = pd.read_parquet(table)
    params = json.loads((folder / "params.json").read_text())
    if damage == "missing":
        table.unlink()
    elif damage == "nan":
        frame.loc[0, "value"] = np.nan
    elif damage == "below":  # one pair written the other way round
        k = frame.index[frame["movieId"] < frame["otherId"]][0]
        frame.loc[k, ["movieId", "otherId"]] = frame.loc[k, ["otherId", "movieId"]].to_numpy()
    elif damage == "unknown movie":
        frame = pd.concat([frame, pd.DataFrame({"movieId": [10**9], "otherId": [10**9], "value": [3.0]})])
    elif damage == "share":
        params["ease"]["share"] = 2.0
    elif damage == "lam":
        params["ease"]["lam"] = "big"
    if damage in ("nan", "below", "unknown movie"):
        frame.to_parquet(table, index=False)
    (folder / "params.json").write_text(json.dumps(params))
    with pytest.raises(ModelError) as info:
        RecommenderIndex.load(folder)
    assert expected in str(info.value)
    assert str(folder) in str(info.value)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="share=1.5"):
        ease.EaseConfig(share=1.5).check()
    with pytest.raises(ValueError, match="lam=0"):
        ease.EaseConfig(lam=0).check()
    with pytest.raises(ValueError, match="max_movies=30000"):
        ease.EaseConfig(max_movies=30000).check()
    assert not ease.OFF.on and ease.EaseConfig().on
