"""Mood recommendations: mapping, any-genre matching, Bayesian ranking, per-user ranking; smoothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.emotion.live import EmotionSmoother
from engine.recommender.mood import (
    UnknownEmotionError,
    bayesian_average,
    genres_for,
    matches_any_genre,
    mood_recommendations,
)
from engine.settings import DEFAULT_MOOD_GENRES


def catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": [1, 2, 3, 4, 5, 6],
            "title": [
                "One vote wonder (2000)",
                "Loved comedy (1990)",
                "Fine romance (1991)",
                "Plain drama (1992)",
                "Horror (1993)",
                "Okay comedy (1994)",
            ],
            "genres": ["Comedy", "Comedy|Romance", "Drama|Romance", "Drama", "Horror", "Action|Comedy"],
            "year": [2000, 1990, 1991, 1992, 1993, 1994],
            "total_ratings": [1, 300, 120, 200, 50, 40],
            "mean_rating": [5.0, 4.4, 4.1, 4.0, 3.0, 3.6],
        }
    )


def test_default_mapping_is_the_seeds():
    assert genres_for("happy") == ["Romance", "Comedy"]
    assert genres_for(" Sad ") == ["Drama"]
    assert genres_for("surprise", DEFAULT_MOOD_GENRES) == ["Mystery", "Sci-Fi"]
    with pytest.raises(UnknownEmotionError, match="bored"):
        genres_for("bored")


def test_mapping_from_settings(monkeypatch):
    monkeypatch.setenv("MOOD_GENRES", json.dumps({"happy": ["Animation"]}))
    assert genres_for("happy") == ["Animation"]
    monkeypatch.setenv("MOOD_GENRES", "{not json")
    with pytest.raises(ValueError, match="MOOD_GENRES is not valid JSON"):
        genres_for("happy")


def test_any_genre_matches_not_the_whole_string():
    mask = matches_any_genre(catalogue()["genres"], ["Comedy"])
    # the seed compared "Comedy|Romance" == "Comedy" and missed movies 2 and 6
    assert mask.tolist() == [True, True, False, False, False, True]


def test_bayesian_ranking_beats_one_vote_wonders():
    out = mood_recommendations("happy", catalogue(), n=5, min_ratings=1)
    assert out["movieId"].tolist()[0] == 2  # 300 ratings at 4.4 beat one 5.0
    assert out["ranked_by"].eq("bayesian average").all()
    assert list(out["score"]) == sorted(out["score"], reverse=True)
    assert 1 not in mood_recommendations("happy", catalogue(), n=5, min_ratings=20)["movieId"].tolist()
    b = bayesian_average(pd.Series([5.0, 4.4]), pd.Series([1, 300]), prior_mean=3.5)
    assert b[0] < b[1]


def test_user_ranking_uses_predictions(small_model):
    from engine.recommender.serving import RecommenderIndex

    index = RecommenderIndex.load(small_model[1])
    user = int(index.user_ids[0])
    out = mood_recommendations("sad", index.movies, n=5, min_ratings=1, index=index, user_id=user, order="rating")
    assert out["genres"].str.split("|").map(lambda g: "Drama" in g).all()
    assert not set(out["movieId"]) & set(index.user_history(user)["movieId"])
    assert list(out["predicted_rating"]) == sorted(out["predicted_rating"], reverse=True)
    assert (out["ranked_by"] == "predicted rating").all()
    # by default a user's mood list is their top picks in the mood's genres
    picks = mood_recommendations("sad", index.movies, n=5, min_ratings=1, index=index, user_id=user)
    expected = index.recommend(user, 5, min_ratings=1, genres=["Drama"], explain=False, order="picks")
    assert picks["movieId"].tolist() == expected["movieId"].tolist() != out["movieId"].tolist()
    assert (picks["ranked_by"] == "top picks").all()


def test_new_user_ranking_from_their_own_ratings(small_model):
    """Someone new (a profile's ratings) gets their fold-in top picks in the mood's genres."""
    from engine.recommender.serving import RecommenderIndex

    index = RecommenderIndex.load(small_model[1])
    mine = [(1, 5.0), (2, 4.5), (3, 1.0), (8, 4.0)]
    out = mood_recommendations("sad", index.movies, n=5, min_ratings=1, index=index, ratings=mine)
    expected = index.recommend_new_user(mine, 5, min_ratings=1, genres=["Drama"], explain=False, order="picks")
    assert out["movieId"].tolist() == expected["movieId"].tolist() and len(out) == 5
    assert not {1, 2, 3, 8} & set(out["movieId"]) and (out["ranked_by"] == "top picks").all()
    other = mood_recommendations(
        "sad", index.movies, n=5, min_ratings=1, index=index, ratings=[(1, 1.0), (2, 0.5), (3, 5.0), (8, 1.0)]
    )
    assert other["movieId"].tolist() != out["movieId"].tolist()  # other tastes, another list
    # no ratings: the everyone list (Bayesian average), as without a user
    anyone = mood_recommendations("sad", index.movies, n=5, min_ratings=1, index=index, ratings=[])
    assert (anyone["ranked_by"] == "bayesian average").all()
    # movies the profile is not interested in are left out, the rest keep their order
    hidden = out["movieId"].tolist()[:2]
    without = mood_recommendations("sad", index.movies, n=5, min_ratings=1, index=index, ratings=mine, hidden=hidden)
    assert without["movieId"].tolist()[:3] == out["movieId"].tolist()[2:] and len(without) == 5
    anyone_without = mood_recommendations("sad", index.movies, n=5, min_ratings=1, hidden=anyone["movieId"][:1])
    assert anyone_without["movieId"].tolist()[:4] == anyone["movieId"].tolist()[1:]


def test_smoother_follows_and_ignores_flicker():
    s = EmotionSmoother(alpha=0.3, labels=("a", "b"))
    for _ in range(10):
        s.update([0.9, 0.1])
    assert s.label == "a"
    s.update([0.0, 1.0])  # one odd frame
    assert s.label == "a"
    for _ in range(5):
        s.update([0.0, 1.0])
    assert s.label == "b" and np.isclose(sum(s.value), 1.0)
    with pytest.raises(ValueError):
        EmotionSmoother(alpha=0)
