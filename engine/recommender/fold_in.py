"""People the model has not seen, and groups: a person's own ratings folded into the model without
retraining (one small least-squares solve), and lists for several people at once (a movie night).

:class:`FoldIn` is a part of :class:`~engine.recommender.serving.RecommenderIndex`, next to
:class:`~engine.recommender.scoring.Scoring` whose ranking and explanations it shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, MAX_RATING, MIN_RATING, TITLE
from . import picks
from .scoring import PICK_MIN_PREDICTED

GROUP_STRATEGIES = {"misery": "the lowest predicted rating in the group", "average": "the mean predicted rating"}


class RatingInputError(ValueError):
    """Ratings given for fold-in that cannot be used."""


class FoldIn:
    """Fold-in of a new person's ratings (both models), their recommendations, and movie nights."""

    def fold_in(self, ratings: list[tuple[int, float]]) -> tuple[np.ndarray, float]:
        """User vector and bias for someone not in the model, from (movieId, rating) pairs.

        Solves the same problem training solves for a user, with the item side fixed:
        ``b_u = sum(r - mu - b_i) / (n + userBiasReg)``, then
        ``(V'V + regParam * n * I) x = V' (r - mu - b_i - b_u)`` (Spark's ALS-WR scaling).
        """
        return self._solve_user(*self._check_ratings(ratings))

    def _solve_user(self, pos: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        base = values - self.mu - self.item_bias[pos]
        bias = float(base.sum() / (len(values) + self.user_bias_reg))
        v = self.item_factors[pos]
        a = v.T @ v + self.reg_param * len(values) * np.eye(self.rank)
        x = np.linalg.solve(a, v.T @ (base - bias))
        return x, bias

    def pick_fold_in(self, ratings: list[tuple[int, float]]) -> np.ndarray:
        """Implicit-ALS user vector for someone not in the model (see :func:`engine.recommender.picks.fold_in`)."""
        self._check_order("picks")
        return self._solve_pick_user(*self._check_ratings(ratings))

    def _solve_pick_user(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        return picks.fold_in(
            self.pick_item_factors, self._pick_gram, pos, values, self.pick_alpha, self.pick_reg, self.pick_neutral
        )

    def _new_user_scores(self, pos: np.ndarray, values: np.ndarray, pick_vector: np.ndarray | None = None):
        """:meth:`~engine.recommender.scoring.Scoring._predicted_scores` of someone new (both models folded in)."""
        if self.blend is not None and pick_vector is None:
            pick_vector = self._solve_pick_user(pos, values)
        return self._predicted_scores(*self._solve_user(pos, values), pick_vector, (pos, values))

    def recommend_new_user(
        self,
        ratings: list[tuple[int, float]],
        n: int = 10,
        min_ratings: int = 0,
        genres: list[str] | None = None,
        explain: bool = True,
        order: str = "rating",
        hidden=(),
        skip=(),
        min_predicted: float | None = PICK_MIN_PREDICTED,
    ) -> pd.DataFrame:
        """Recommendations for a person's own ratings, without retraining.

        ``hidden``: movie ids the person marked "not interested" (left out; unknown ids ignored).
        ``skip``: more movie ids to leave out this time (the app's quick-start grid, on screen already).
        ``min_predicted``: as for :meth:`~engine.recommender.scoring.Scoring.recommend`.
        """
        self._check_order(order)
        pos, values = self._check_ratings(ratings)
        pick_vector = self._solve_pick_user(pos, values) if self.has_picks else None
        rating = self._new_user_scores(pos, values, pick_vector)
        ranked = rating if order == "rating" else self._pick_scores(pick_vector, (pos, values))
        mask = self._candidates(
            np.concatenate([pos, self._positions(hidden), self._positions(skip)]).astype(int), min_ratings, genres
        )
        return self._ranked(ranked, rating, mask, n, (pos, values), explain, order, min_predicted)

    def recommend_group(
        self,
        members: dict,
        n: int = 10,
        min_ratings: int = 0,
        genres: list[str] | None = None,
        strategy: str = "misery",
        hidden=(),
        explain: bool = True,
    ) -> pd.DataFrame:
        """Movies for several people at once (a movie night).

        ``members``: a label per person -> a MovieLens user id, or that person's own
        (movieId, rating) pairs (folded in). Each person's predicted rating of every
        movie is computed as for them alone (clipped to the star scale); the group
        score is the lowest of them (``"misery"``: a movie nobody will mind) or their
        mean (``"average"``), ties broken by the mean. Movies anyone rated are left
        out, and so are ``hidden`` ones (movies a member marked "not interested"). A column
        per member, ``"for <label>"``, holds that person's predicted rating; ``because_by``
        (with ``explain``) the (label, title) of each member's rated movie most like it,
        as *Because you rated…* picks it for one person.
        """
        if strategy not in GROUP_STRATEGIES:
            raise ValueError(
                f"Unknown group strategy {strategy!r}: use "
                + " or ".join(f"{k!r} ({v})" for k, v in GROUP_STRATEGIES.items())
                + "."
            )
        if len(members) < 2:
            raise RatingInputError("A movie night needs at least two people: add another user or profile.")
        predicted, seen, liked = {}, [], {}
        for label, who in members.items():
            if isinstance(who, (int, np.integer)):
                u = self._user(who)
                scores = self._known_scores(u)[0]
                liked[str(label)] = self.rated.row(u)
                seen.append(liked[str(label)][0])
            else:
                pos, values = self._check_ratings(who)
                scores = self._new_user_scores(pos, values)[0]
                seen.append(pos)
                liked[str(label)] = (pos, values)
            predicted[str(label)] = np.clip(scores, MIN_RATING, MAX_RATING)
        table = np.vstack(list(predicted.values()))
        mean = table.mean(axis=0)
        group = table.min(axis=0) if strategy == "misery" else mean
        mask = self._candidates(np.concatenate([*seen, self._positions(hidden)]).astype(int), min_ratings, genres)
        top = self._top(group + 1e-9 * mean, mask, n)
        out = self.movies.iloc[top][[ITEM, TITLE, GENRES, "year", "imdbId", "tmdbId"]].reset_index(drop=True)
        out["group_score"] = group[top].round(3)
        for label, values in predicted.items():
            out[f"for {label}"] = values[top].round(3)
        out["n_ratings"] = self.item_support[top]
        if explain:
            reasons = {label: self._explain(top, rated, per_item=1) for label, rated in liked.items()}
            out["because_by"] = [
                [(label, why[j][0]) for label, why in reasons.items() if why[j]] for j in range(len(top))
            ]
        return out

    def _check_ratings(self, ratings) -> tuple[np.ndarray, np.ndarray]:
        if not ratings:
            raise RatingInputError("No ratings given: rate at least one movie to get recommendations.")
        pos, values, seen = [], [], set()
        for movie_id, rating in ratings:
            try:
                r = float(rating)
            except (TypeError, ValueError):
                raise RatingInputError(
                    f"Rating {rating!r} for movie {movie_id} is not a number; "
                    f"use {MIN_RATING}-{MAX_RATING} in half stars."
                ) from None
            if not (MIN_RATING <= r <= MAX_RATING) or (r * 2) % 1:
                raise RatingInputError(
                    f"Rating {rating!r} for movie {movie_id} is off the scale: "
                    f"use {MIN_RATING}-{MAX_RATING} in half stars."
                )
            i = self._item(movie_id)
            if i in seen:
                raise RatingInputError(f"Movie {movie_id} is rated twice; keep one rating.")
            seen.add(i)
            pos.append(i)
            values.append(r)
        return np.array(pos), np.array(values, dtype=float)
