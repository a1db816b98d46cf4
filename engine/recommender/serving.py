"""Millisecond serving from exported factors: recommend, similar, fold-in, explanations.

No Spark here. A trained model's factors, biases and movie metadata sit in numpy
arrays; a recommendation is one matrix-vector product.

Scores are ``mu + b_user + b_movie + u.v`` as in the Spark model. Lists are
ranked by that raw score; the *predicted rating* shown is the score clipped to
0.5-5.0 (clipping first would tie every score above 5.0).

``order="picks"`` ranks by the implicit-ALS model instead (:mod:`engine.recommender.picks`):
movies the user is most likely to watch and like next. The list still shows the
explicit model's predicted rating; ``score`` is then the implicit score ``u.v``.

Example:
    >>> index = RecommenderIndex.load(current_model_dir())   # doctest: +SKIP
    >>> index.recommend(575, n=5)[["title", "predicted_rating"]]   # doctest: +SKIP
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from . import picks
from ..data.movielens import (GENRES, ITEM, MAX_RATING, MIN_RATING, NO_GENRES, RATING, TITLE, USER, fold_for_search,
                        readable_title, title_search_key)

log = logging.getLogger(__name__)

LIKED_RATING = 4.0  # history ratings that count as "you liked" in explanations
DISLIKED_BELOW = 3.0  # a rating under this is a dislike, whatever the person's mean
#: Top picks leave out movies the explicit model predicts below this many stars: a list called
#: "top picks" should not offer a film the person would probably dislike (user 232 got
#: Wild Wild West at 2.37). The result's ``attrs["held_back"]`` lists what was left out.
PICK_MIN_PREDICTED = 3.0
EXPLAIN_REFERENCE = 20  # the picks an explanation is measured against: the top 20 (measured best of 20-300)
DEFAULT_SIMILAR_MIN_RATINGS = 10
ORDERS = {"rating": "highest predicted rating", "picks": "top picks (implicit ALS)"}
GROUP_STRATEGIES = {"misery": "the lowest predicted rating in the group", "average": "the mean predicted rating"}


class UnknownIdError(KeyError):
    """A user or movie id the model does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class RatingInputError(ValueError):
    """Ratings given for fold-in that cannot be used."""


def id_positions(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each of ``query`` in the sorted, unique ``ids`` (int32; -1 where absent).

    Ids that lie close together (MovieLens's) go through a lookup table, one memory read per id
    (32 M ids in a fraction of a second); sparse ids through a binary search."""
    query = np.asarray(query)
    if len(ids) == 0 or query.size == 0:
        return np.full(query.shape, -1, dtype=np.int32)
    lo, hi = int(ids[0]), int(ids[-1])
    if hi - lo < 4 * len(ids) + 1_000_000:   # -1 on both ends of the table catches ids outside [lo, hi]
        table = np.full(hi - lo + 3, -1, dtype=np.int32)
        table[ids - lo + 1] = np.arange(len(ids), dtype=np.int32)
        return table[np.clip(np.subtract(query, lo - 1, dtype=np.int64), 0, len(table) - 1)]
    hits = np.minimum(np.searchsorted(ids, query), len(ids) - 1)
    return np.where(ids[hits] == query, hits, -1).astype(np.int32)


@dataclass
class RatedMovies:
    """Every known rating in compact arrays: each user's rated movies as compressed sparse rows.

    The ratings of the user at position ``p`` (of the index's ``user_ids``) of movies the model has
    factors for are ``items[indptr[p]:indptr[p + 1]]`` (movie positions, int32) and the same slice
    of ``values`` (float32: half stars are exact), in the order the ratings table gave them. That is
    about 8 bytes a rating (256 MiB for ml-32m), where a pandas frame took 24 and a lookup per call.
    ``not_in_model`` counts each user's other ratings (of movies without factors); ``others`` keeps
    those rows, and the ratings of users the model lacks (few: what fell outside its training split).
    """

    indptr: np.ndarray        # (n_users + 1,) int64
    items: np.ndarray         # (n,) int32 positions in item_ids
    values: np.ndarray        # (n,) float32, float64 when a rating is not exact in float32
    not_in_model: np.ndarray  # (n_users,) int32
    others: pd.DataFrame      # (userId, movieId, rating) of the ratings outside the rows above

    @classmethod
    def build(cls, ratings: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> "RatedMovies":
        """From a (userId, movieId, rating) frame in any order; without a sort when it comes sorted
        by user (as :func:`engine.recommender.model_store.save_model` writes it)."""
        users = id_positions(user_ids, ratings[USER].to_numpy())
        items = id_positions(item_ids, ratings[ITEM].to_numpy())
        values = ratings[RATING].to_numpy()
        compact = values.astype(np.float32)
        if not np.array_equal(compact, values):
            compact = values.astype(np.float64)
        served = (users >= 0) & (items >= 0)
        not_in_model = np.bincount(users[(users >= 0) & (items < 0)], minlength=len(user_ids)).astype(np.int32)
        others = ratings.iloc[:0][[USER, ITEM, RATING]]
        if not served.all():
            others = ratings.loc[~served, [USER, ITEM, RATING]].reset_index(drop=True)
            users, items, compact = users[served], items[served], compact[served]
        if users.size > 1 and (users[1:] < users[:-1]).any():
            order = np.argsort(users, kind="stable")   # stable: each user's ratings keep their order
            users, items, compact = users[order], items[order], compact[order]
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=len(user_ids)), out=indptr[1:])
        return cls(indptr, items, compact, not_in_model, others)

    @property
    def nbytes(self) -> int:
        return (self.indptr.nbytes + self.items.nbytes + self.values.nbytes + self.not_in_model.nbytes
                + int(self.others.memory_usage(deep=True).sum()))

    def row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(movie positions as int64, ratings as stored) of the user at position ``user``: copies."""
        start, stop = self.indptr[user], self.indptr[user + 1]
        return self.items[start:stop].astype(np.int64), self.values[start:stop].copy()


@dataclass
class RecommenderIndex:
    """Everything serving needs, in memory. Build with :meth:`load` or :meth:`from_frames`."""

    mu: float
    reg_param: float
    user_bias_reg: float
    user_ids: np.ndarray         # (n_users,)
    user_factors: np.ndarray     # (n_users, rank) float64
    user_bias: np.ndarray        # (n_users,)
    item_ids: np.ndarray         # (n_items,) movies with factors
    item_factors: np.ndarray     # (n_items, rank)
    item_bias: np.ndarray        # (n_items,)
    item_support: np.ndarray     # (n_items,) training ratings per movie
    movies: pd.DataFrame         # metadata aligned with item_ids (title, genres, year, links)
    rated: RatedMovies           # every known rating, per user position (history, exclusion, profile)
    pick_user_factors: np.ndarray | None = None  # (n_users, k) implicit ALS, aligned with user_ids
    pick_item_factors: np.ndarray | None = None  # (n_items, k) aligned with item_ids
    pick_alpha: float = 0.0
    pick_reg: float = 0.0
    _pick_gram: np.ndarray | None = field(default=None, repr=False)
    _user_pos: dict = field(default_factory=dict, repr=False)
    _item_pos: dict = field(default_factory=dict, repr=False)
    _unit_items: np.ndarray | None = field(default=None, repr=False)
    _genre_masks: dict = field(default_factory=dict, repr=False)
    _ratings: pd.DataFrame | None = field(default=None, repr=False)
    _title_keys: pd.Series | None = field(default=None, repr=False)
    #: movieId -> the title as people write it ("The Matrix (1999)"), made once at load
    readable_titles: pd.Series | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self._user_pos = {int(u): i for i, u in enumerate(self.user_ids)}
        self._item_pos = {int(m): i for i, m in enumerate(self.item_ids)}
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self._unit_items = self.item_factors / np.where(norms == 0, 1, norms)
        if self.pick_item_factors is not None:
            self._pick_gram = self.pick_item_factors.T @ self.pick_item_factors
        genres = self.movies[GENRES].str.split("|").to_numpy()
        if len(genres):   # one boolean row per genre name, sorted: which movies have it
            names, codes = np.unique(np.concatenate(genres), return_inverse=True)
            masks = np.zeros((len(names), len(genres)), bool)
            masks[codes, np.repeat(np.arange(len(genres)), [len(gs) for gs in genres])] = True
            self._genre_masks = {str(name): mask for name, mask in zip(names, masks)}
        readable = [readable_title(t) for t in self.movies[TITLE]]
        self.readable_titles = pd.Series(readable, index=self.movies[ITEM].astype(int).to_numpy(), name=TITLE)
        self._title_keys = pd.Series([title_search_key(t, r) for t, r in zip(self.movies[TITLE], readable)])

    # ------------------------------------------------------------------ lookups
    @property
    def rank(self) -> int:
        return self.item_factors.shape[1]

    @property
    def has_picks(self) -> bool:
        """Whether the model can order lists as top picks (models saved before cannot)."""
        return self.pick_item_factors is not None

    @property
    def genres(self) -> list[str]:
        return list(self._genre_masks)

    @property
    def ratings(self) -> pd.DataFrame:
        """Every known rating as a (userId, movieId, rating) frame, grouped by user. Built on first use
        from :attr:`rated` (serving never needs it: at ml-32m it is 0.7 GiB, the arrays 0.25)."""
        if self._ratings is None:
            r = self.rated
            served = pd.DataFrame({USER: np.repeat(self.user_ids, np.diff(r.indptr)),
                                   ITEM: self.item_ids[r.items], RATING: r.values})
            self._ratings = pd.concat([served, r.others], ignore_index=True) if len(r.others) else served
        return self._ratings

    def has_user(self, user_id: int) -> bool:
        return int(user_id) in self._user_pos

    def has_movie(self, movie_id: int) -> bool:
        return int(movie_id) in self._item_pos

    def _user(self, user_id) -> int:
        try:
            return self._user_pos[int(user_id)]
        except (KeyError, ValueError, TypeError):
            raise UnknownIdError(f"Unknown user id {user_id!r}: the model knows "
                                 f"{len(self.user_ids):,} users, ids {self.user_ids.min()}-"
                                 f"{self.user_ids.max()}. Pick one of them or use new-user mode.") from None

    def _item(self, movie_id) -> int:
        try:
            return self._item_pos[int(movie_id)]
        except (KeyError, ValueError, TypeError):
            raise UnknownIdError(f"Unknown movie id {movie_id!r}: it is not in the catalogue or "
                                 "has no ratings in the training data. Search by title to find "
                                 "a known movie.") from None

    def user_history(self, user_id: int, n: int | None = None) -> pd.DataFrame:
        """The user's rated movies, best first (movieId, title, genres, rating)."""
        pos, ratings = self.rated.row(self._user(user_id))
        order = np.lexsort((-self.item_support[pos], -ratings))
        pos, ratings = pos[order], ratings[order]
        if n is not None:
            pos, ratings = pos[:n], ratings[:n]
        out = self.movies.iloc[pos][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out[RATING] = ratings
        return out

    def user_profile(self, user_id: int, top: int = 3) -> dict:
        """A user's taste in numbers: how many movies they rated, their mean rating, and the
        genres of the movies they liked (4 stars or more; all they rated when none) most often.

        ``ratings`` counts the movies the model knows; ``not_in_model`` the user's other ratings (of
        movies the model has no factors for: none of their ratings fell in its training split)."""
        u = self._user(user_id)
        pos, ratings = self.rated.row(u)
        liked = pos[ratings >= LIKED_RATING] if (ratings >= LIKED_RATING).any() else pos
        counts = {g: int(mask[liked].sum()) for g, mask in self._genre_masks.items() if g != NO_GENRES}
        ranked = sorted(((g, c) for g, c in counts.items() if c > 0), key=lambda gc: (-gc[1], gc[0]))
        return {"ratings": int(len(pos)), "mean_rating": float(ratings.mean()) if len(pos) else None,
                "liked": int((ratings >= LIKED_RATING).sum()), "top_genres": ranked[:top],
                "not_in_model": int(self.rated.not_in_model[u])}

    # ------------------------------------------------------------------ scoring
    def raw_scores(self, user_vector: np.ndarray, user_bias: float) -> np.ndarray:
        """Unclipped ``mu + b_u + b_i + u.v`` for every movie."""
        return self.mu + user_bias + self.item_bias + self.item_factors @ user_vector

    def _positions(self, movie_ids) -> np.ndarray:
        """Index positions of the movie ids the model knows (others ignored)."""
        return np.array([self._item_pos[int(m)] for m in movie_ids if int(m) in self._item_pos], dtype=int)

    def _candidates(self, exclude: np.ndarray | None, min_ratings: int,
                    genres: list[str] | None) -> np.ndarray:
        mask = self.item_support >= min_ratings
        if genres:
            unknown = [g for g in genres if g not in self._genre_masks]
            if unknown:
                raise ValueError(f"Unknown genre(s) {', '.join(unknown)}; known genres: "
                                 f"{', '.join(self.genres)}.")
            mask &= np.logical_or.reduce([self._genre_masks[g] for g in genres])
        if exclude is not None and len(exclude):
            mask[exclude] = False
        return mask

    def _top(self, scores: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if n <= 0 or idx.size == 0:
            return idx[:0]
        if idx.size > n:
            idx = idx[np.argpartition(-scores[idx], n - 1)[:n]]
        # Stable order: score descending, then movieId ascending for exact ties.
        return idx[np.lexsort((self.item_ids[idx], -scores[idx]))]

    def _check_order(self, order: str) -> None:
        if order not in ORDERS:
            raise ValueError(f"Unknown order {order!r}: use " +
                             " or ".join(f"{k!r} ({v})" for k, v in ORDERS.items()) + ".")
        if order == "picks" and not self.has_picks:
            raise ValueError("This model was saved without the top-picks model: retrain it "
                             "(`python -m engine train` or the home page) or order by rating.")

    def _ranked(self, ranked: np.ndarray, scores: np.ndarray, mask: np.ndarray, n: int, liked: tuple | None,
                explain: bool, order: str, min_predicted: float | None) -> pd.DataFrame:
        """The top ``n`` of ``ranked`` among ``mask``, as a table; top picks without the movies predicted
        below ``min_predicted`` stars (those that would have made the list are in ``attrs["held_back"]``:
        (movieId, title, predicted rating))."""
        held, reference = np.array([], int), None
        wide = self._top(ranked, mask, max(n, EXPLAIN_REFERENCE) if order == "picks" and explain else n)
        if order == "picks" and min_predicted is not None:
            held = wide[:n][scores[wide[:n]] < min_predicted]
            if held.size:   # sorted, so the first n of a longer list are the top n
                wide = self._top(ranked, mask & (scores >= min_predicted), len(wide))
        top, reference = wide[:n], (wide if order == "picks" else None)
        out = self.movies.iloc[top].reset_index(drop=True).copy()
        out["predicted_rating"] = np.clip(scores[top], MIN_RATING, MAX_RATING).round(3)
        out["score"] = ranked[top]
        out["n_ratings"] = self.item_support[top]
        if explain:
            out["because"] = (self._explain_picks(top, liked, reference) if order == "picks"
                              else self._explain(top, liked))
        titles = self.movies[TITLE].to_numpy()
        out.attrs["held_back"] = [(int(self.item_ids[i]), str(titles[i]),
                                   round(float(np.clip(scores[i], MIN_RATING, MAX_RATING)), 3)) for i in held]
        return out

    def pick_contributions(self, top: np.ndarray, liked: tuple) -> np.ndarray:
        """(len(top), len(rated)) share of each rated movie in each top pick's score."""
        pos, values = liked
        return picks.contributions(self.pick_item_factors, self._pick_gram, pos, values,
                                   self.pick_alpha, self.pick_reg, top)

    @staticmethod
    def liked_mask(ratings: np.ndarray) -> np.ndarray:
        """The ratings an explanation may cite: 3 stars or more, and at least the person's own mean
        (4 stars always counts as liked). A 2-star movie never explains a pick."""
        if len(ratings) == 0:
            return np.zeros(0, bool)
        return ratings >= max(DISLIKED_BELOW, min(LIKED_RATING, float(ratings.mean())))

    def _explain_picks(self, top: np.ndarray, liked: tuple | None, reference: np.ndarray | None = None,
                       per_item: int = 3) -> list[list[str]]:
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
        both = self.pick_contributions(np.concatenate([top, reference]), liked)
        share, usual = both[:len(top)], both[len(top):]
        specific = (share - usual.mean(axis=0)) / (usual.std(axis=0) + 1e-12)
        specific = np.where(self.liked_mask(liked[1]) & (share > 0), specific, -np.inf)
        titles = self.movies[TITLE].to_numpy()
        cap = max(2, (len(top) + 1) // 2)   # one title on at most about half the rows, when others qualify
        cited, reasons = np.zeros(len(liked[0]), int), []
        for j in range(len(top)):
            ranked = [b for b in np.argsort(-specific[j], kind="stable") if specific[j, b] > 0]
            best = [b for b in ranked if cited[b] < cap][:per_item] or ranked[:1]
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

    # ------------------------------------------------------------------ public API
    def recommend(self, user_id: int, n: int = 10, exclude_rated: bool = True,
                  min_ratings: int = 0, genres: list[str] | None = None,
                  explain: bool = True, order: str = "rating",
                  min_predicted: float | None = PICK_MIN_PREDICTED) -> pd.DataFrame:
        """Top-``n`` movies for a known user, ranked by predicted rating or as top picks.

        Top picks leave out movies predicted below ``min_predicted`` stars (None keeps them: the
        implicit model's own ranking); ``attrs["held_back"]`` says which would have been listed.

        >>> index.recommend(575, n=3)[["movieId", "predicted_rating"]]  # doctest: +SKIP
        """
        self._check_order(order)
        u = self._user(user_id)
        rated = self.rated.row(u)
        scores = self.raw_scores(self.user_factors[u], self.user_bias[u])
        ranked = scores if order == "rating" else self.pick_item_factors @ self.pick_user_factors[u]
        mask = self._candidates(rated[0] if exclude_rated else None, min_ratings, genres)
        return self._ranked(ranked, scores, mask, n, rated, explain, order, min_predicted)

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
        return picks.fold_in(self.pick_item_factors, self._pick_gram, pos, values,
                             self.pick_alpha, self.pick_reg)

    def recommend_new_user(self, ratings: list[tuple[int, float]], n: int = 10,
                           min_ratings: int = 0, genres: list[str] | None = None,
                           explain: bool = True, order: str = "rating", hidden=(), skip=(),
                           min_predicted: float | None = PICK_MIN_PREDICTED) -> pd.DataFrame:
        """Recommendations for a person's own ratings, without retraining.

        ``hidden``: movie ids the person marked "not interested" (left out; unknown ids ignored).
        ``skip``: more movie ids to leave out this time (the app's quick-start grid, on screen already).
        ``min_predicted``: as for :meth:`recommend`.
        """
        self._check_order(order)
        pos, values = self._check_ratings(ratings)
        x, bias = self._solve_user(pos, values)
        scores = self.raw_scores(x, bias)
        ranked = scores if order == "rating" else self.pick_item_factors @ self._solve_pick_user(pos, values)
        mask = self._candidates(np.concatenate([pos, self._positions(hidden), self._positions(skip)]).astype(int),
                                min_ratings, genres)
        return self._ranked(ranked, scores, mask, n, (pos, values), explain, order, min_predicted)

    def recommend_group(self, members: dict, n: int = 10, min_ratings: int = 0,
                        genres: list[str] | None = None, strategy: str = "misery", hidden=(),
                        explain: bool = True) -> pd.DataFrame:
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
            raise ValueError(f"Unknown group strategy {strategy!r}: use " +
                             " or ".join(f"{k!r} ({v})" for k, v in GROUP_STRATEGIES.items()) + ".")
        if len(members) < 2:
            raise RatingInputError("A movie night needs at least two people: add another user or profile.")
        predicted, seen, liked = {}, [], {}
        for label, who in members.items():
            if isinstance(who, (int, np.integer)):
                u = self._user(who)
                scores = self.raw_scores(self.user_factors[u], self.user_bias[u])
                liked[str(label)] = self.rated.row(u)
                seen.append(liked[str(label)][0])
            else:
                pos, values = self._check_ratings(who)
                scores = self.raw_scores(*self._solve_user(pos, values))
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
            out["because_by"] = [[(label, why[j][0]) for label, why in reasons.items() if why[j]]
                                 for j in range(len(top))]
        return out

    def similar(self, movie_id: int, n: int = 10,
                min_ratings: int = DEFAULT_SIMILAR_MIN_RATINGS, also=()) -> pd.DataFrame:
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
        scores = self._unit_items @ query
        mask = self._candidates(np.array(seeds), min_ratings, None)
        top = self._top(scores, mask, n)
        out = self.movies.iloc[top][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["score"] = scores[top].round(4)
        out["n_ratings"] = self.item_support[top]
        return out

    def search_titles(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Movies whose title contains ``query``, most-rated first.

        Case and accents do not matter, and the article may lead as people write it:
        "the godfather" finds "Godfather, The (1972)", "amelie" finds "Amélie".
        """
        q = fold_for_search((query or "").strip())
        hits = np.flatnonzero(self._title_keys.str.contains(q, regex=False).to_numpy()) if q else \
            np.arange(len(self.movies))
        hits = hits[np.argsort(-self.item_support[hits], kind="stable")][:limit]
        out = self.movies.iloc[hits][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["n_ratings"] = self.item_support[hits]
        return out

    def popular_to_rate(self, exclude=(), n: int = 9, offset: int = 0) -> pd.DataFrame:
        """Movies a newcomer most likely has seen, to rate first: the most-rated ones.

        ``exclude`` (movie ids already rated) are left out; ``offset`` skips that many of the
        rest, most-rated first, and wraps around at the end ("show me other movies").
        Ties in popularity keep catalogue order, so the list is stable between calls.
        """
        if n <= 0:
            return self.movies.iloc[[]][[ITEM, TITLE, GENRES, "year"]].assign(n_ratings=[])
        mask = np.ones(len(self.item_ids), bool)
        known = [self._item_pos[int(m)] for m in exclude if int(m) in self._item_pos]
        mask[known] = False
        pos = np.flatnonzero(mask)
        pos = pos[np.argsort(-self.item_support[pos], kind="stable")]
        if pos.size:
            start = int(offset) % pos.size
            pos = np.roll(pos, -start)[:n]
        out = self.movies.iloc[pos][[ITEM, TITLE, GENRES, "year"]].reset_index(drop=True)
        out["n_ratings"] = self.item_support[pos]
        return out

    def find_movie(self, query) -> int:
        """The movie someone means: its id, or its title as stored or as people write it.

        "2571", "the matrix", "Matrix, The (1999)" all give 2571. A title must name one movie:
        the whole title (the year may be left out) or a part only one title contains; otherwise
        the error lists the candidates with their ids. Digits are an id when the model knows
        one (add the year for a title made of digits: "1917 (2019)").
        """
        text = str(query if query is not None else "").strip()
        if not text:
            raise UnknownIdError("No movie given: pass its id or its title.")
        if text.isdigit() and int(text) in self._item_pos:
            return int(text)
        hits = self.search_titles(text, limit=len(self.movies))
        if hits.empty:
            raise UnknownIdError(f"No movie id or title matches {text!r}: check the spelling, or give "
                                 "a part of the title.")
        q = fold_for_search(text)
        whole = [int(m) for m, t in zip(hits[ITEM], hits[TITLE])
                 if q in {fold_for_search(form) for form in
                          (t, self.readable_titles[m], readable_title(t, with_year=False))}]
        if len(whole) == 1:
            return whole[0]
        if len(hits) == 1:
            return int(hits[ITEM].iloc[0])
        named = hits[hits[ITEM].isin(whole)] if whole else hits
        shown = "; ".join(f"{self.readable_titles[m]} = {m}" for m in named[ITEM][:8])
        more = f" and {len(named) - 8} more" if len(named) > 8 else ""
        raise UnknownIdError(f"{text!r} matches {len(named)} movies ({shown}{more}): pass the id or the "
                             "whole title with its year.")

    def _check_ratings(self, ratings) -> tuple[np.ndarray, np.ndarray]:
        if not ratings:
            raise RatingInputError("No ratings given: rate at least one movie to get "
                                   "recommendations.")
        pos, values, seen = [], [], set()
        for movie_id, rating in ratings:
            try:
                r = float(rating)
            except (TypeError, ValueError):
                raise RatingInputError(f"Rating {rating!r} for movie {movie_id} is not a number; "
                                       f"use {MIN_RATING}-{MAX_RATING} in half stars.") from None
            if not (MIN_RATING <= r <= MAX_RATING) or (r * 2) % 1:
                raise RatingInputError(f"Rating {rating!r} for movie {movie_id} is off the scale: "
                                       f"use {MIN_RATING}-{MAX_RATING} in half stars.")
            i = self._item(movie_id)
            if i in seen:
                raise RatingInputError(f"Movie {movie_id} is rated twice; keep one rating.")
            seen.add(i)
            pos.append(i)
            values.append(r)
        return np.array(pos), np.array(values, dtype=float)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_frames(cls, *, mu: float, reg_param: float, user_bias_reg: float,
                    user_frame: pd.DataFrame, item_frame: pd.DataFrame,
                    movies: pd.DataFrame, ratings: pd.DataFrame,
                    pick_user_frame: pd.DataFrame | None = None,
                    pick_item_frame: pd.DataFrame | None = None,
                    pick_params: dict | None = None) -> "RecommenderIndex":
        """From the saved tables: ``user_frame`` [userId, user_bias, f0..], ``item_frame``
        [movieId, item_bias, n_ratings, f0..], catalogue ``movies`` and all ``ratings``
        [userId, movieId, rating] (kept as :class:`RatedMovies`, not as the frame);
        optionally the top-picks factors [userId|movieId, f0..] and ``pick_params``
        {alpha, reg_param}."""
        fcols = [c for c in item_frame.columns if c.startswith("f") and c[1:].isdigit()]
        item_frame = item_frame.sort_values(ITEM).reset_index(drop=True)
        user_frame = user_frame.sort_values(USER).reset_index(drop=True)
        meta = movies.set_index(ITEM).reindex(item_frame[ITEM]).reset_index()
        meta[TITLE] = meta[TITLE].fillna("(unknown title)")
        meta[GENRES] = meta[GENRES].fillna("(no genres listed)")
        user_ids, item_ids = user_frame[USER].to_numpy(np.int64), item_frame[ITEM].to_numpy(np.int64)
        return cls(
            mu=float(mu), reg_param=float(reg_param), user_bias_reg=float(user_bias_reg),
            user_ids=user_ids,
            user_factors=user_frame[fcols].to_numpy(np.float64),
            user_bias=user_frame["user_bias"].to_numpy(np.float64),
            item_ids=item_ids,
            item_factors=item_frame[fcols].to_numpy(np.float64),
            item_bias=item_frame["item_bias"].to_numpy(np.float64),
            item_support=item_frame["n_ratings"].to_numpy(np.int64),
            movies=meta, rated=RatedMovies.build(ratings, user_ids, item_ids),
            **cls._pick_fields(user_frame, item_frame, pick_user_frame, pick_item_frame, pick_params))

    @staticmethod
    def _pick_fields(user_frame, item_frame, pick_user_frame, pick_item_frame, params) -> dict:
        if pick_user_frame is None or pick_item_frame is None:
            return {}
        return {"pick_user_factors": picks.align(pick_user_frame, USER, user_frame[USER].to_numpy()),
                "pick_item_factors": picks.align(pick_item_frame, ITEM, item_frame[ITEM].to_numpy()),
                "pick_alpha": float(params["alpha"]), "pick_reg": float(params["reg_param"])}

    @classmethod
    def load(cls, model_dir) -> "RecommenderIndex":
        """Load from a saved model folder (see :mod:`engine.recommender.model_store`, which checks every
        table it reads); :class:`~engine.recommender.model_store.ModelError` names what is wrong."""
        from .model_store import ModelError, read_serving_tables
        tables = read_serving_tables(model_dir)
        try:
            index = cls.from_frames(**tables)
            del tables   # the ratings frame: kept as arrays now; give its memory back (Arrow keeps a pool)
            pa.default_memory_pool().release_unused()
            return index
        except (KeyError, ValueError, TypeError, IndexError) as exc:   # what the checks did not foresee
            log.exception("loading %s", model_dir)
            raise ModelError(f"{model_dir} cannot be served ({type(exc).__name__}: {exc}). Retrain it, or "
                             "make another saved model current (`python -m engine models --use NAME`, "
                             "or Saved models on the app's Model page).") from exc
