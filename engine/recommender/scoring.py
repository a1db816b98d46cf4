"""Scores for people the model knows, and similar movies: ranked lists with their explanations.

The predicted stars are the model's blend (:mod:`engine.recommender.neighbours`) of the explicit model's
``mu + b_user + b_movie + u.v``, the movie neighbourhood over the person's own ratings and the top-picks
score, as Spark computes it for the test RMSE (models saved before the blend: the explicit score alone, as
in the Spark model). Lists are ranked by that raw score; the *predicted rating* shown is the score clipped
to 0.5-5.0 (clipping first would tie every score above 5.0). ``order="picks"`` ranks by the implicit-ALS
model (:mod:`engine.recommender.picks`) blended with EASE (:mod:`engine.recommender.ease`) instead: movies the
user is most likely to watch and like next. The list still shows the predicted stars; ``score`` is then the
top-picks score (models saved before EASE: the implicit score ``u.v``).

:class:`Scoring` is a part of :class:`~engine.recommender.serving.RecommenderIndex` (its factors,
biases and :class:`~engine.recommender.catalogue.Catalogue`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, MAX_RATING, MIN_RATING, TITLE
from . import picks

LIKED_RATING = 4.0  # history ratings that count as "you liked" in explanations
DISLIKED_BELOW = 3.0  # a rating under this is a dislike, whatever the person's mean
#: Top picks leave out movies whose predicted stars are below this many: a list called
#: "top picks" should not offer a film the person would probably dislike (user 232 got
#: Wild Wild West at 2.37). The result's ``attrs["held_back"]`` lists what was left out.
PICK_MIN_PREDICTED = 3.0
EXPLAIN_REFERENCE = 20  # the picks an explanation is measured against: the top 20 (measured best of 20-300)
DEFAULT_SIMILAR_MIN_RATINGS = 10
#: Whole-catalogue scans run on float32 copies of the factors (Spark's own precision: half the bytes
#: read per query, the bound on serving time for big catalogues); this many more candidates than asked
#: for are then rescored in float64, so lists and the scores shown are float64's.
RESCORE_MARGIN = 32
ORDERS = {"rating": "highest predicted rating", "picks": "top picks (implicit ALS + EASE)"}


def _spread(scores: np.ndarray | None, share: float) -> tuple[float, float]:
    """(mean, share / standard deviation) of a part of the top-picks score; (0, 0) without spread."""
    if scores is None or not share or scores.size == 0:
        return 0.0, 0.0
    sd = float(scores.std())
    return (float(scores.mean()), share / sd) if sd > 1e-12 else (0.0, 0.0)


def _as_shown(scores):
    """Predicted ratings as the app shows them: within the rating scale, 3 decimals."""
    return np.clip(scores, MIN_RATING, MAX_RATING).round(3)


class Scoring:
    """Recommendations for a known user, similar movies, and why each movie is on a list.

    Reads the index's factors and biases (``mu``, ``user_*``, ``item_*``, ``pick_*``), its ``rated``
    movies per user and the catalogue's genre masks and positions."""

    def raw_scores(self, user_vector: np.ndarray, user_bias: float) -> np.ndarray:
        """The explicit model's unclipped ``mu + b_u + b_i + u.v`` for every movie (one part of the
        blend: :meth:`_predicted_scores` gives the stars shown), the products from the float32 scan
        (within ~1e-6 of float64's; :meth:`exact_scores` gives those for the few that are shown)."""
        dots = (self._scan_items @ user_vector.astype(np.float32)).astype(np.float64)
        dots += self._mu_item_bias
        dots += user_bias
        return dots

    def exact_scores(self, user_vector: np.ndarray, user_bias: float, pos: np.ndarray) -> np.ndarray:
        """:meth:`raw_scores` of the movies at ``pos`` in float64."""
        return self.mu + user_bias + self.item_bias[pos] + self.item_factors[pos] @ user_vector

    def _rating_scores(self, user_vector: np.ndarray, user_bias: float):
        """(every movie's score from the scan, the float64 rescorer of some) for :meth:`_ranked`."""
        return self.raw_scores(user_vector, user_bias), lambda pos: self.exact_scores(user_vector, user_bias, pos)

    def _predicted_scores(self, user_vector: np.ndarray, user_bias: float, pick_vector, rated: tuple):
        """(every movie's predicted stars, unclipped, from the float32 scans; the float64 rescorer of some):
        the model's blend (:mod:`engine.recommender.neighbours`) of the explicit score, the neighbourhood's
        and the top-picks score for a person with these factors and ``rated`` (positions, ratings); models
        without a blend: the explicit model's :meth:`_rating_scores`."""
        blend = self.blend
        if blend is None:
            return self._rating_scores(user_vector, user_bias)
        pos, values = rated
        base = self._mu_item_bias + user_bias
        residuals = values - base[pos]
        common = blend.intercept + (blend.explicit + blend.neighbourhood) * base
        common += blend.neighbourhood * self.neighbours.offsets(pos, residuals)
        scan = common + blend.explicit * (self._scan_items @ user_vector.astype(np.float32)).astype(np.float64)
        if pick_vector.any():
            scan += blend.picks * (self._scan_picks @ pick_vector.astype(np.float32)).astype(np.float64)

        def exact(at):
            out = common[at] + blend.explicit * (self.item_factors[at] @ user_vector)
            return out + blend.picks * (self.pick_item_factors[at] @ pick_vector)

        return scan, exact

    def _known_scores(self, u: int):
        """:meth:`_predicted_scores` of the known user at position ``u``."""
        picks_u = self.pick_user_factors[u] if self.blend is not None else None
        return self._predicted_scores(self.user_factors[u], self.user_bias[u], picks_u, self.rated.row(u))

    def _pick_scores(self, pick_vector: np.ndarray, rated: tuple):
        """(every movie's top-picks score from the scan, the float64 rescorer of some, the scales of its two parts
        for :meth:`pick_contributions`) for someone with this implicit-ALS vector and ``rated`` (positions,
        ratings). With EASE (:mod:`engine.recommender.ease`) the score is ``(1 - share) * z(u'.v') + share *
        z(EASE)``, each part standardised over the catalogue (EASE's over its movies; the others' EASE part is
        0); without it, ``u'.v'``. A part without spread (a vector of zeros: someone who rated nothing above
        the neutral rating; no rated movie in EASE) counts 0; with neither, the most rated come first, not ties
        broken by id."""
        ease = self.ease
        has_picks = bool(pick_vector.any())
        if ease is None:
            if not has_picks:
                return self._by_support()
            scan = (self._scan_picks @ pick_vector.astype(np.float32)).astype(np.float64)
            return scan, lambda pos: self.pick_item_factors[pos] @ pick_vector, None
        p = (self._scan_picks @ pick_vector.astype(np.float32)).astype(np.float64) if has_picks else None
        e = ease.scores(*rated)
        p_mean, p_scale = _spread(p, 1.0 - ease.cfg.share)
        e_mean, e_scale = _spread(e, ease.cfg.share)
        if not p_scale and not e_scale:
            return self._by_support()
        scan = np.zeros(len(self.item_ids))
        if p_scale:
            scan += p_scale * (p - p_mean)
        if e_scale:
            scan[ease.positions] += e_scale * (e - e_mean)
        inside = ease.column < len(ease.positions)

        def exact(at):
            out = np.zeros(len(at))
            if p_scale:
                out += p_scale * (self.pick_item_factors[at] @ pick_vector - p_mean)
            if e_scale:
                out += np.where(inside[at], e_scale * (ease.exact(at, *rated) - e_mean), 0.0)
            return out

        return scan, exact, (p_scale, e_scale)

    def _by_support(self):
        support = self.item_support.astype(np.float64)
        return support.copy(), lambda pos: support[pos], None

    def _candidates(self, exclude: np.ndarray | None, min_ratings: int, genres: list[str] | None) -> np.ndarray:
        mask = self.item_support >= min_ratings
        if genres:
            unknown = [g for g in genres if g not in self._genre_masks]
            if unknown:
                raise ValueError(f"Unknown genre(s) {', '.join(unknown)}; known genres: {', '.join(self.genres)}.")
            mask &= np.logical_or.reduce([self._genre_masks[g] for g in genres])
        if exclude is not None and len(exclude):
            mask[exclude] = False
        return mask

    def _top(self, scores: np.ndarray, mask: np.ndarray, n: int, exact=None) -> np.ndarray:
        """Positions of the ``n`` best ``scores`` among ``mask``. With ``exact`` (positions -> float64
        scores), ``scores`` came from a float32 scan: the best ``n + RESCORE_MARGIN`` are rescored, in
        place in ``scores``, and ranked by those."""
        idx = np.flatnonzero(mask)
        if n <= 0 or idx.size == 0:
            return idx[:0]
        wide = n + (RESCORE_MARGIN if exact is not None else 0)
        if idx.size > wide:
            idx = idx[np.argpartition(-scores[idx], wide - 1)[:wide]]
        if exact is not None:
            scores[idx] = exact(idx)
        # Stable order: score descending, then movieId ascending for exact ties.
        return idx[np.lexsort((self.item_ids[idx], -scores[idx]))][:n]

    def _check_order(self, order: str) -> None:
        if order not in ORDERS:
            raise ValueError(
                f"Unknown order {order!r}: use " + " or ".join(f"{k!r} ({v})" for k, v in ORDERS.items()) + "."
            )
        if order == "picks" and not self.has_picks:
            raise ValueError(
                "This model was saved without the top-picks model: retrain it "
                "(`python -m engine train` or the home page) or order by rating."
            )

    def recommend(
        self,
        user_id: int,
        n: int = 10,
        exclude_rated: bool = True,
        min_ratings: int = 0,
        genres: list[str] | None = None,
        explain: bool = True,
        order: str = "rating",
        min_predicted: float | None = PICK_MIN_PREDICTED,
    ) -> pd.DataFrame:
        """Top-``n`` movies for a known user, ranked by predicted rating or as top picks.

        Top picks leave out movies predicted below ``min_predicted`` stars (None keeps them: the
        implicit model's own ranking); ``attrs["held_back"]`` says which would have been listed.

        >>> index.recommend(575, n=3)[["movieId", "predicted_rating"]]  # doctest: +SKIP
        """
        self._check_order(order)
        u = self._user(user_id)
        rated = self.rated.row(u)
        rating = self._known_scores(u)
        ranked = rating if order == "rating" else self._pick_scores(self.pick_user_factors[u], rated)
        mask = self._candidates(rated[0] if exclude_rated else None, min_ratings, genres)
        return self._ranked(ranked, rating, mask, n, rated, explain, order, min_predicted)

    def similar(
        self, movie_id: int, n: int = 10, min_ratings: int = DEFAULT_SIMILAR_MIN_RATINGS, also=()
    ) -> pd.DataFrame:
        """The ``n`` movies whose factors have the highest cosine similarity.

        Movies with fewer than ``min_ratings`` training ratings are left out: their
        factors are mostly noise and fill the list with obscure titles.
        ``also``: more movies to be like at once ("like The Godfather and Heat"): the
        query is then the direction of the mean of their unit factor vectors, each of
        them counting the same, and all of them are left out of the list.
        """
        seeds = list(dict.fromkeys([self._item(movie_id), *(self._item(m) for m in also)]))
        query = self._unit_items[seeds[0]]
        if len(seeds) > 1:
            query = self._unit_items[seeds].mean(axis=0)
            norm = np.linalg.norm(query)
            query = query / norm if norm else query
        scores = (self._scan_unit @ query.astype(np.float32)).astype(np.float64)
        mask = self._candidates(np.array(seeds), min_ratings, None)
        top = self._top(scores, mask, n, exact=lambda pos: self._unit_items[pos] @ query)
        out = self.movies.iloc[top][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["score"] = scores[top].round(4)
        out["n_ratings"] = self.item_support[top]
        return out

    def _select(
        self, ranked: tuple, rating: tuple, mask: np.ndarray, n: int, k: int, order: str, min_predicted: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the best ``k`` of ``ranked`` among ``mask``, the best first; of its first ``n``, those
        held back as predicted below ``min_predicted`` stars (top picks only: the others take their place)).
        Rescores the chosen in place, in both score arrays (see :meth:`_ranked`)."""
        (ranked, exact_ranked, *_), (scores, exact_rating, *_) = ranked, rating
        held = np.array([], int)
        wide = self._top(ranked, mask, k, exact_ranked)
        if order == "picks":
            scores[wide] = exact_rating(wide)
        if order == "picks" and min_predicted is not None:
            # compared as shown (3 decimals): a movie listed at 3.000 stars is not held back as "below 3"
            held = wide[:n][_as_shown(scores[wide[:n]]) < min_predicted]
            if held.size:  # sorted, so the first n of a longer list are the top n
                wide = self._top(ranked, mask & (_as_shown(scores) >= min_predicted), len(wide), exact_ranked)
                scores[wide] = exact_rating(wide)
        return wide, held

    def top_ids(
        self,
        user_id: int,
        n: int,
        min_ratings: tuple[int, ...] = (0,),
        order: str = "rating",
        min_predicted: float | None = PICK_MIN_PREDICTED,
    ) -> list[np.ndarray]:
        """For each of ``min_ratings``, the movie ids :meth:`recommend` lists (rated movies left out, no genre,
        no explanations), from one scoring of the user and without building tables: what the ranking
        evaluation asks of every sampled user (a table per list was most of its time)."""
        self._check_order(order)
        u = self._user(user_id)
        rated = self.rated.row(u)
        rating = self._known_scores(u)
        ranked = rating if order == "rating" else self._pick_scores(self.pick_user_factors[u], rated)
        out = []
        for at_least in min_ratings:
            # _select rescores in place: each list starts from the scan's scores, as recommend's would
            fresh_rating = (rating[0].copy(), *rating[1:])
            fresh = fresh_rating if order == "rating" else (ranked[0].copy(), *ranked[1:])
            wide, _ = self._select(
                fresh, fresh_rating, self._candidates(rated[0], at_least, None), n, n, order, min_predicted
            )
            out.append(self.item_ids[wide[:n]])
        return out

    def _ranked(
        self,
        ranked: tuple,
        rating: tuple,
        mask: np.ndarray,
        n: int,
        liked: tuple | None,
        explain: bool,
        order: str,
        min_predicted: float | None,
    ) -> pd.DataFrame:
        """The top ``n`` of ``ranked`` among ``mask``, as a table; top picks without the movies predicted
        below ``min_predicted`` stars (those that would have made the list are in ``attrs["held_back"]``:
        (movieId, title, predicted rating)). ``ranked`` and ``rating`` are (scores of every movie from a
        float32 scan, their float64 rescorer; top picks' also the scales of their two parts, for the explanations)
        of the order and of the explicit model (the same pair when ordering by rating); what is shown is float64's."""
        k = max(n, EXPLAIN_REFERENCE) if order == "picks" and explain else n
        wide, held = self._select(ranked, rating, mask, n, k, order, min_predicted)
        (ranked, _, *scales), (scores, *_) = ranked, rating
        top, reference = wide[:n], (wide if order == "picks" else None)
        # One frame made at once (inserting columns one by one into a copy took 0.5 ms more per query)
        columns = {c: self.movies[c].array.take(top) for c in self.movies.columns}
        columns["predicted_rating"] = _as_shown(scores[top])
        columns["score"] = ranked[top]
        columns["n_ratings"] = self.item_support[top]
        if explain:
            columns["because"] = (
                self._explain_picks(top, liked, reference, scales[0] if scales else None)
                if order == "picks"
                else self._explain(top, liked)
            )
        out = pd.DataFrame(columns)
        titles = self.movies[TITLE].to_numpy()
        out.attrs["held_back"] = [(int(self.item_ids[i]), str(titles[i]), float(_as_shown(scores[i]))) for i in held]
        return out

    def pick_contributions(self, top: np.ndarray, liked: tuple, scales: tuple | None = None) -> np.ndarray:
        """(len(top), len(rated)) share of each rated movie in each top pick's score; with EASE, ``scales`` (from
        :meth:`_pick_scores`) weigh the implicit model's terms and EASE's as the order does."""
        pos, values = liked
        implicit = picks.contributions(
            self.pick_item_factors, self._pick_gram, pos, values, self.pick_alpha, self.pick_reg, top, self.pick_neutral
        )
        if scales is None:
            return implicit
        p_scale, e_scale = scales
        return p_scale * implicit + e_scale * self.ease.contributions(top, pos, values)

    @staticmethod
    def liked_mask(ratings: np.ndarray) -> np.ndarray:
        """The ratings an explanation may cite: 3 stars or more, and at least the person's own mean
        (4 stars always counts as liked). A 2-star movie never explains a pick."""
        if len(ratings) == 0:
            return np.zeros(0, bool)
        return ratings >= max(DISLIKED_BELOW, min(LIKED_RATING, float(ratings.mean())))

    def _explain_picks(
        self,
        top: np.ndarray,
        liked: tuple | None,
        reference: np.ndarray | None = None,
        scales: tuple | None = None,
        per_item: int = 3,
    ) -> list[list[str]]:
        """For each top pick, the liked movies whose part of its score is specific to it.

        A pick's score splits exactly into one term per rated movie (:func:`engine.recommender.picks.contributions`).
        The biggest terms are the same few widely-seen favourites for every pick (user 575: Pulp Fiction,
        The Matrix and Stand by Me on all five rows), so each movie's term is measured against its terms
        for ``reference`` (the picks around it: the list's top 20), in their standard deviations. Cited
        are liked movies (:meth:`liked_mask`) that add to this pick, and more than to the usual pick,
        the most unusual first; a title already cited on half the rows gives way to the next one.
        """
        if liked is None or len(liked[0]) == 0 or len(top) == 0:
            return [[] for _ in top]
        reference = top if reference is None or len(reference) == 0 else reference
        both = self.pick_contributions(np.concatenate([top, reference]), liked, scales)
        share, usual = both[: len(top)], both[len(top) :]
        specific = (share - usual.mean(axis=0)) / (usual.std(axis=0) + 1e-12)
        specific = np.where(self.liked_mask(liked[1]) & (share > 0), specific, -np.inf)
        titles = self.movies[TITLE].to_numpy()
        cap = max(2, (len(top) + 1) // 2)  # one title on at most about half the rows, when others qualify
        cited, reasons = np.zeros(len(liked[0]), int), []
        for j in range(len(top)):
            positive = np.flatnonzero(specific[j] > 0)  # in index order, so the stable sort breaks ties by it
            ranked = positive[np.argsort(-specific[j, positive], kind="stable")]
            best = ranked[cited[ranked] < cap][:per_item]
            best = best if best.size else ranked[:1]
            cited[best] += 1
            reasons.append([titles[liked[0][b]] for b in best])
        return reasons

    def _explain(self, top: np.ndarray, liked: tuple | None, per_item: int = 3) -> list[list[str]]:
        """For each recommended movie, the liked movies (:meth:`liked_mask`) whose factors point the same way."""
        if liked is None or len(liked[0]) == 0:
            return [[] for _ in top]
        pos, ratings = liked
        good = pos[self.liked_mask(ratings)]
        sims = self._unit_items[good] @ self._unit_items[top].T  # (n_liked, n_top)
        titles = self.movies[TITLE].to_numpy()
        reasons = []
        for j in range(len(top)):
            best = np.argsort(-sims[:, j])[:per_item]
            reasons.append([titles[good[b]] for b in best if sims[b, j] > 0])
        return reasons
