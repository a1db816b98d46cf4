"""Emotion -> movies: genre mapping, any-genre matching, Bayesian-average ranking.

The seed compared the whole genre string with one genre name, so "Comedy|Romance"
never matched "Comedy"; here a movie matches when *any* of its genres is one of
the emotion's genres. Without a user, matches are ranked by a Bayesian average
(``(C*m + sum) / (C + n)``: a movie needs many good ratings to beat the global
mean ``m``), not by the raw mean that put one-vote 5.0 films on top. With a user
(a MovieLens user, or someone new through their own ratings), they are that user's
top picks in those genres from the serving index (or, for a model saved without
top picks, the user's highest predicted ratings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, TITLE
from ..settings import get_settings

DEFAULT_MIN_RATINGS = 20
PRIOR_WEIGHT = 20  # C: how many "average" ratings every movie starts with


class UnknownEmotionError(ValueError):
    pass


def genres_for(emotion: str, mapping: dict | None = None) -> list[str]:
    mapping = mapping if mapping is not None else get_settings().mood_genres
    key = (emotion or "").strip().lower()
    if key not in mapping:
        raise UnknownEmotionError(f"Unknown emotion {emotion!r}; use one of: {', '.join(mapping)}.")
    return list(mapping[key])


def matches_any_genre(genres: pd.Series, wanted: list[str]) -> np.ndarray:
    """Boolean mask: the pipe-separated ``genres`` string contains any wanted genre."""
    wanted_set = set(wanted)
    return genres.str.split("|").map(lambda gs: not wanted_set.isdisjoint(gs)).to_numpy(bool)


def bayesian_average(
    mean: pd.Series, count: pd.Series, prior_mean: float, prior_weight: float = PRIOR_WEIGHT
) -> pd.Series:
    return (prior_weight * prior_mean + mean * count) / (prior_weight + count)


def mood_recommendations(
    emotion: str,
    catalogue: pd.DataFrame,
    n: int = 10,
    min_ratings: int = DEFAULT_MIN_RATINGS,
    index=None,
    user_id=None,
    mapping: dict | None = None,
    order: str | None = None,
    ratings: list[tuple[int, float]] | None = None,
    hidden=(),
) -> pd.DataFrame:
    """Movies for an emotion.

    Args:
        catalogue: movieId, title, genres, total_ratings, mean_rating (a model's
            ``movies.parquet`` or :func:`engine.recommender.training.movie_catalogue`).
        index, user_id: when both are given, rank the user's unseen movies (top
            picks, or ``order="rating"``: predicted rating) instead of the Bayesian average.
        index, ratings: the same for someone new, from their own (movieId, rating) pairs
            (a profile's ratings, folded in without retraining).
        hidden: movie ids to leave out (a profile's "not interested"), whichever the ranking.
    """
    wanted = genres_for(emotion, mapping)
    if index is not None and (user_id is not None or ratings):
        order = order or ("picks" if index.has_picks else "rating")
        if user_id is not None:
            out = index.recommend(
                user_id, n=n + len(hidden), min_ratings=min_ratings, genres=wanted, explain=False, order=order
            )
            out = out[~out[ITEM].isin(hidden)].head(n).reset_index(drop=True)
        else:
            out = index.recommend_new_user(
                ratings, n=n, min_ratings=min_ratings, genres=wanted, explain=False, order=order, hidden=hidden
            )
        out["ranked_by"] = "top picks" if order == "picks" else "predicted rating"
        return out[[ITEM, TITLE, GENRES, "year", "predicted_rating", "n_ratings", "ranked_by"]]
    mask = (
        matches_any_genre(catalogue[GENRES], wanted)
        & (catalogue["total_ratings"] >= min_ratings).to_numpy()
        & ~catalogue[ITEM].isin(hidden).to_numpy()
    )
    pool = catalogue[mask].copy()
    rated = catalogue[catalogue["total_ratings"] > 0]
    prior = float(np.average(rated["mean_rating"], weights=rated["total_ratings"])) if len(rated) else 3.5
    pool["score"] = bayesian_average(pool["mean_rating"], pool["total_ratings"], prior).round(4)
    pool = pool.sort_values(["score", "total_ratings", ITEM], ascending=[False, False, True]).head(n)
    pool["ranked_by"] = "bayesian average"
    return pool[[ITEM, TITLE, GENRES, "year", "score", "mean_rating", "total_ratings", "ranked_by"]].reset_index(
        drop=True
    )
