"""Top picks (implicit ALS): equality with Spark, exact fold-in, ranking quality, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from engine.recommender.model_store import ModelError
from engine.recommender.model_tables import read_serving_tables
from engine.recommender.serving import RecommenderIndex
from spark_reference import assert_same_ranking, spark_pick_top_n


@pytest.fixture(scope="module")
def small_index(small_model):
    return RecommenderIndex.load(small_model[1])


@pytest.fixture(scope="module")
def implicit_index(small_index):
    """The small model's top picks from the implicit ALS alone (its blend with EASE: tests/test_ease.py)."""
    return replace(small_index, ease=None)


def _rated(result) -> dict[int, set]:
    return {int(u): set(g) for u, g in result["tables"]["ratings"].groupby("userId")["movieId"]}


@pytest.mark.spark
def test_picks_equal_spark_small(spark, small_model, implicit_index):
    _, _, result = small_model
    users = [int(u) for u in implicit_index.user_ids[:25]]
    expected = spark_pick_top_n(spark, result["picks_model"], users, _rated(result), n=10)
    for u in users:
        got = implicit_index.recommend(u, 10, explain=False, order="picks", min_predicted=None)
        assert_same_ranking(expected[u], got["movieId"].tolist(), got["score"].tolist())


@pytest.mark.spark
@pytest.mark.integration
@pytest.mark.slow
def test_picks_equal_spark_real(spark, real_model):
    _, path, result = real_model
    index = replace(RecommenderIndex.load(path), ease=None)  # the implicit ALS's own order
    users = [575, 232] + [int(u) for u in np.random.default_rng(2).choice(index.user_ids, 30, replace=False)]
    expected = spark_pick_top_n(spark, result["picks_model"], users, _rated(result), n=10)
    for u in users:
        got = index.recommend(u, 10, explain=False, order="picks", min_predicted=None)
        assert_same_ranking(expected[u], got["movieId"].tolist(), got["score"].tolist())


def test_pick_fold_in_solves_sparks_equations(small_model, small_index):
    # Spark's last half-step solves every user against the final item factors, so
    # folding in a trained user's training ratings must give back that user's vector.
    train = small_model[2]["train_ratings"]
    for user, rows in list(train.groupby("userId"))[:20]:
        pairs = list(zip(rows["movieId"].astype(int), rows["rating"].astype(float)))
        folded = small_index.pick_fold_in(pairs)
        trained = small_index.pick_user_factors[small_index._user(user)]
        np.testing.assert_allclose(folded, trained, rtol=1e-5, atol=1e-6)  # measured 5e-8


def test_new_user_picks_match_trained_user(small_model, implicit_index):
    small_index = implicit_index
    train = small_model[2]["train_ratings"]
    user, rows = next(iter(train.groupby("userId")))
    pairs = list(zip(rows["movieId"].astype(int), rows["rating"].astype(float)))
    folded = small_index.recommend_new_user(pairs, 8, explain=False, order="picks", min_predicted=None)
    # the trained user's own list, leaving out only what the new user rated (the train rows)
    scores = small_index.pick_item_factors @ small_index.pick_user_factors[small_index._user(user)]
    rated = {small_index._item(m) for m, _ in pairs}
    expected = [int(small_index.item_ids[i]) for i in np.argsort(-scores) if i not in rated][:8]
    assert folded["movieId"].tolist() == expected
    # picks still show the explicit model's predicted rating, on the star scale
    assert folded["predicted_rating"].between(0.5, 5.0).all()


def test_pick_explanations_split_the_score_exactly(small_model, implicit_index):
    """'Because' for top picks: the rated movies whose terms add most to the pick's score (the implicit
    ALS's part; with EASE beside it: tests/test_ease.py)."""
    small_index = implicit_index
    train = small_model[2]["train_ratings"]
    user, rows = list(train.groupby("userId"))[4]
    pairs = list(zip(rows["movieId"].astype(int), rows["rating"].astype(float)))
    picks = small_index.recommend_new_user(pairs, 6, order="picks")
    pos = np.array([small_index._item(m) for m, _ in pairs])
    top = np.array([small_index._item(m) for m in picks["movieId"]])
    share = small_index.pick_contributions(top, (pos, rows["rating"].to_numpy(float)))
    assert share.shape == (6, len(pairs))
    # one term per rated movie, summing to the score the list was ordered by
    np.testing.assert_allclose(share.sum(axis=1), picks["score"], rtol=1e-9, atol=1e-9)
    # cited: liked movies (3 stars or more, and at least the user's mean) whose term in this pick is positive
    titles = small_index.movies["title"].to_numpy()
    ratings = rows["rating"].to_numpy(float)
    citable = {titles[p]: b for b, p in enumerate(pos) if ratings[b] >= max(3.0, min(4.0, ratings.mean()))}
    for j, reasons in enumerate(picks["because"]):
        assert len(reasons) <= 3 and all(share[j, citable[t]] > 0 for t in reasons)
    assert sum(map(len, picks["because"])) >= len(picks)
    # the explicit model's explanations are a different question (factor similarity)
    by_similarity = small_index._explain(top, (pos, rows["rating"].to_numpy(float)))
    assert by_similarity != picks["because"].tolist()


def test_picks_order_differs_from_rating_order(small_index):
    user = int(small_index.user_ids[3])
    by_rating = small_index.recommend(user, 10, explain=False)["movieId"].tolist()
    picks = small_index.recommend(user, 10, explain=False, order="picks")
    assert picks["movieId"].tolist() != by_rating
    assert picks["score"].is_monotonic_decreasing


def test_order_errors_name_the_value(small_index):
    with pytest.raises(ValueError, match=r"Unknown order 'best'.*'rating'.*'picks'"):
        small_index.recommend(int(small_index.user_ids[0]), order="best")
    with pytest.raises(ValueError, match="Unknown order"):
        small_index.recommend_new_user([(int(small_index.item_ids[0]), 4.0)], order="")


def test_model_without_pick_tables_still_serves(small_model, tmp_path):
    """Models saved before top picks existed load, order by rating, and say why picks are off."""
    old = tmp_path / "old-model"
    shutil.copytree(small_model[1], old)
    for name in ("pick_user_factors", "pick_item_factors"):
        (old / f"{name}.parquet").unlink()
    (old / "neighbours.parquet").unlink()  # nor the blend of the stars, nor EASE, which came after them
    (old / "ease_gram.parquet").unlink()
    params = json.loads((old / "params.json").read_text())
    for key in ("picks", "blend", "neighbours", "ease"):
        params.pop(key)
    (old / "params.json").write_text(json.dumps(params))
    index = RecommenderIndex.load(old)
    assert not index.has_picks and index.blend is None and index.ease is None
    user = int(index.user_ids[0])
    assert len(index.recommend(user, 5)) == 5
    with pytest.raises(ValueError, match="without the top-picks model: retrain"):
        index.recommend(user, 5, order="picks")


def test_disliked_ratings_and_models_saved_before_them(small_model, small_index, tmp_path):
    """Ratings below the neutral 3 stars are "watched and disliked" (Spark's negative implicit feedback:
    preference 0, confidence 1 + alpha * distance), and add nothing to a pick's score; a model saved before
    that took every rating as liked, and still folds in so (neutral 0)."""
    from engine.recommender import picks
    from engine.recommender.training import check_picks_config

    params = json.loads((small_model[1] / "params.json").read_text())["picks"]
    assert params["neutral"] == small_index.pick_neutral == 3.0
    pairs = [(int(m), r) for m, r in zip(small_index.item_ids[:6], [5.0, 4.5, 1.0, 2.0, 3.0, 4.0])]
    top = np.arange(small_index.item_ids.size)
    parts = small_index.pick_contributions(top, small_index._check_ratings(pairs))
    assert np.abs(parts[:, 2:5]).max() == 0 and np.abs(parts[:, [0, 1, 5]]).max() > 0  # 1, 2 and 3 stars: none
    np.testing.assert_allclose(parts.sum(1), small_index.pick_item_factors @ small_index.pick_fold_in(pairs))
    old = tmp_path / "before-neutral"
    shutil.copytree(small_model[1], old)
    saved = json.loads((old / "params.json").read_text())
    del saved["picks"]["neutral"]
    (old / "params.json").write_text(json.dumps(saved))
    before = RecommenderIndex.load(old)
    assert before.pick_neutral == 0.0
    pos, values = before._check_ratings(pairs)
    v, k = before.pick_item_factors[pos], before.pick_item_factors.shape[1]
    c = before.pick_alpha * values  # every rating liked: confidence 1 + alpha * rating, lambda * n
    a = before._pick_gram + (v * c[:, None]).T @ v + before.pick_reg * len(pos) * np.eye(k)
    np.testing.assert_allclose(before.pick_fold_in(pairs), np.linalg.solve(a, ((1 + c)[:, None] * v).sum(0)))
    # Someone new who has only disliked movies so far: the implicit vector is 0; top picks are then the
    # most rated movies (not the lowest ids that ties of 0 would give), still without the disliked-looking.
    first = [(int(m), r) for m, r in zip(small_index.item_ids[:3], [1.0, 2.0, 3.0])]
    np.testing.assert_allclose(small_index.pick_fold_in(first), 0.0)
    implicit = replace(small_index, ease=None)  # with EASE, its own scores of those ratings order them
    everything = implicit.recommend_new_user(first, 10, order="picks", explain=False, min_predicted=None)
    assert everything["n_ratings"].is_monotonic_decreasing and everything["n_ratings"].iloc[0] == max(
        small_index.item_support[3:]
    )
    shown = implicit.recommend_new_user(first, 10, order="picks", explain=True)
    assert len(shown) == 10 and (shown["predicted_rating"] >= 3.0).all()
    for bad in (float("nan"), -1.0, 6.0, True):
        with pytest.raises(ValueError, match="top-picks neutral"):
            check_picks_config(picks.PicksConfig(neutral=bad))


def test_half_saved_picks_are_an_error(small_model, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(small_model[1], broken)
    (broken / "pick_item_factors.parquet").unlink()
    with pytest.raises(ModelError, match="pick_item_factors.parquet is missing"):
        read_serving_tables(broken)


@pytest.mark.integration
@pytest.mark.slow
def test_picks_beat_popularity_on_real_data(real_model):
    """The reason picks exist: on held-out ratings they rank better than both the
    predicted-rating order and the most-popular list (same users, same split)."""
    ranking = real_model[2]["metrics"]["ranking"]
    picks, popular, by_rating = (ranking[k]["ndcg_at_k"] for k in ("picks", "popularity", "model"))
    assert picks > popular and picks > by_rating
    assert ranking["picks_filtered"]["ndcg_at_k"] > popular  # with the app's default support filter
    assert ranking["picks"]["users"] == ranking["popularity"]["users"] > 500


def test_top_picks_hold_back_what_the_user_would_dislike(small_model, small_index):
    """Top picks leave out movies predicted below 3 stars (user 232 got Wild Wild West at 2.37) and
    say which they were; the same for someone new, folded in from their ratings."""
    from engine.recommender.serving import PICK_MIN_PREDICTED

    checked = 0
    train = small_model[2]["train_ratings"]
    for user in small_index.user_ids:
        user = int(user)
        everything = small_index.recommend(user, 10, order="picks", explain=False, min_predicted=None)
        low = everything[everything["predicted_rating"] < PICK_MIN_PREDICTED]
        shown = small_index.recommend(user, 10, order="picks", explain=False)
        assert (shown["predicted_rating"] >= PICK_MIN_PREDICTED).all() and len(shown) == 10
        assert [m for m, _, _ in shown.attrs["held_back"]] == low["movieId"].tolist()
        # the rest keep their order
        kept = everything[everything["predicted_rating"] >= PICK_MIN_PREDICTED]["movieId"].tolist()
        assert shown["movieId"].tolist()[: len(kept)] == kept
        if len(low) and checked < 3:
            rows = train[train["userId"] == user]
            pairs = list(zip(rows["movieId"].astype(int), rows["rating"].astype(float)))
            mine = small_index.recommend_new_user(pairs, 10, order="picks", explain=False)
            assert (mine["predicted_rating"] >= PICK_MIN_PREDICTED).all()
            unfiltered = small_index.recommend_new_user(pairs, 10, order="picks", explain=False, min_predicted=None)
            assert [m for m, _, _ in mine.attrs["held_back"]] == unfiltered[
                unfiltered["predicted_rating"] < PICK_MIN_PREDICTED
            ]["movieId"].tolist()
        checked += bool(len(low))
    assert checked >= 3  # the generated data has users with such picks
