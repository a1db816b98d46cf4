"""Millisecond serving from exported factors: recommend, similar, fold-in, explanations.

No Spark here. A trained model's factors, biases and movie metadata sit in numpy
arrays; a recommendation is one matrix-vector product. :class:`RecommenderIndex`
holds them, and its work is split in three parts, one module each:

* :class:`~engine.recommender.catalogue.Catalogue`: titles, title search, finding the movie
  someone means, the most-rated movies to rate first (the quick-start grid);
* :class:`~engine.recommender.scoring.Scoring`: recommendations for a known user (by
  predicted rating or as top picks), similar movies, the explanations;
* :class:`~engine.recommender.fold_in.FoldIn`: people not in the model (their own
  ratings, folded in) and groups (a movie night).

This module builds and loads the index and keeps every known rating compactly
(:class:`RatedMovies`); its ``__all__`` is serving's public API, errors included.

Example:
    >>> index = RecommenderIndex.load(current_model_dir())   # doctest: +SKIP
    >>> index.recommend(575, n=5)[["title", "predicted_rating"]]   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ..data.movielens import GENRES, ITEM, NO_GENRES, RATING, TITLE, USER
from . import picks
from .catalogue import Catalogue, UnknownIdError
from .ease import EaseIndex
from .fold_in import GROUP_STRATEGIES, FoldIn, RatingInputError
from .neighbours import Blend, NeighbourIndex
from .scoring import DEFAULT_SIMILAR_MIN_RATINGS, LIKED_RATING, ORDERS, PICK_MIN_PREDICTED, Scoring

__all__ = [
    "RecommenderIndex",
    "RatedMovies",
    "id_positions",
    "UnknownIdError",
    "RatingInputError",
    "ORDERS",
    "GROUP_STRATEGIES",
    "PICK_MIN_PREDICTED",
    "DEFAULT_SIMILAR_MIN_RATINGS",
    "LIKED_RATING",
]

log = logging.getLogger(__name__)


def no_huge_page_advice() -> None:
    """Stop numpy asking the kernel for transparent huge pages (``madvise``) on arrays of 4 MiB or more.

    Where THP ``defrag`` is ``madvise`` (a common kernel default) and memory is fragmented (a server with
    a big page cache), each such allocation can stall in direct compaction for seconds: on this project's
    host one 128 MiB lookup took 0.05 s or 2.4 s, and loading a 32 M-rating model 13-26 s instead of 9 s.
    Called by :meth:`RecommenderIndex.load` (for the whole process, once); an explicit
    ``NUMPY_MADVISE_HUGEPAGE`` in the environment is left to numpy."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # another numpy: its own default stays
        return
    _set_madvise_hugepage(False)


def id_positions(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each of ``query`` in the sorted, unique ``ids`` (int32; -1 where absent).

    Ids that lie close together (MovieLens's) go through a lookup table, one memory read per id
    (32 M ids in a fraction of a second); sparse ids through a binary search."""
    query = np.asarray(query)
    if len(ids) == 0 or query.size == 0:
        return np.full(query.shape, -1, dtype=np.int32)
    lo, hi = int(ids[0]), int(ids[-1])
    if hi - lo < 4 * len(ids) + 1_000_000:
        # The table spans the query's ids too, so no id needs clipping (np.clip on 32 M ids took
        # seconds); a query with far-off ids (damaged data) looks those up in [lo, hi] only.
        qlo, qhi = int(query.min()), int(query.max())
        base, top = min(lo, qlo), max(hi, qhi)
        if base >= 0 and top < 8 * len(ids) + 2_000_000:
            # Ids from 1 (MovieLens's): the table starts at 0 and the query indexes it as it is. A
            # shifted copy of 32 M ids (int64, 256 MB of fresh pages) cost 0.3-1.0 s, the lookup 0.2 s.
            table = np.full(top + 1, -1, dtype=np.int32)
            table[ids] = np.arange(len(ids), dtype=np.int32)
            return table[query]
        if top - base < 8 * len(ids) + 2_000_000:
            table = np.full(top - base + 1, -1, dtype=np.int32)
            table[ids - base] = np.arange(len(ids), dtype=np.int32)
            return table[np.subtract(query, base, dtype=np.int64)]
        table = np.full(hi - lo + 1, -1, dtype=np.int32)
        table[ids - lo] = np.arange(len(ids), dtype=np.int32)
        out = np.full(query.shape, -1, dtype=np.int32)
        inside = (query >= lo) & (query <= hi)
        out[inside] = table[np.subtract(query[inside], lo, dtype=np.int64)]
        return out
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

    indptr: np.ndarray  # (n_users + 1,) int64
    items: np.ndarray  # (n,) int32 positions in item_ids
    values: np.ndarray  # (n,) float32, float64 when a rating is not exact in float32
    not_in_model: np.ndarray  # (n_users,) int32
    others: pd.DataFrame  # (userId, movieId, rating) of the ratings outside the rows above

    @classmethod
    def build(cls, ratings: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> "RatedMovies":
        """From a (userId, movieId, rating) frame in any order; without a sort when it comes sorted
        by user (as :func:`engine.recommender.model_store.save_model` writes it).

        Sorted, each user's ratings are one run: users are looked up once a run (not once a rating:
        32 M lookups and a 32 M-long array at ml-32m), and the rows the model cannot serve (movies
        without factors, users outside its training split: few) are found from the runs."""
        user_col = ratings[USER].to_numpy()
        if user_col.size > 1 and (user_col[1:] < user_col[:-1]).any():
            ratings = ratings.iloc[np.argsort(user_col, kind="stable")]  # stable: each user's order kept
            user_col = ratings[USER].to_numpy()
        n = len(user_col)
        items = id_positions(item_ids, ratings[ITEM].to_numpy())
        values = ratings[RATING].to_numpy()
        compact = values.astype(np.float32)
        if not np.array_equal(compact, values):
            compact = values.astype(np.float64)
        starts = np.flatnonzero(np.r_[True, user_col[1:] != user_col[:-1]]) if n else np.zeros(0, np.int64)
        run_user = id_positions(user_ids, user_col[starts])  # each run's position in user_ids; -1: not in it
        run_length = np.diff(np.r_[starts, n])
        unserved = np.flatnonzero(items < 0)  # ratings of movies without factors
        run_unserved = np.bincount(np.searchsorted(starts, unserved, side="right") - 1, minlength=len(starts))
        known = run_user >= 0
        not_in_model = np.zeros(len(user_ids), dtype=np.int32)
        not_in_model[run_user[known]] = run_unserved[known]
        counts = np.zeros(len(user_ids), dtype=np.int64)
        counts[run_user[known]] = (run_length - run_unserved)[known]
        others = ratings.iloc[:0][[USER, ITEM, RATING]]
        if len(unserved) or not known.all():
            served = np.repeat(known, run_length)
            served[unserved] = False
            others = ratings.loc[~served, [USER, ITEM, RATING]].reset_index(drop=True)
            items, compact = items[served], compact[served]
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, items, compact, not_in_model, others)

    @property
    def nbytes(self) -> int:
        return (
            self.indptr.nbytes
            + self.items.nbytes
            + self.values.nbytes
            + self.not_in_model.nbytes
            + int(self.others.memory_usage(deep=True).sum())
        )

    def row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(movie positions as int64, ratings as stored) of the user at position ``user``: copies."""
        start, stop = self.indptr[user], self.indptr[user + 1]
        return self.items[start:stop].astype(np.int64), self.values[start:stop].copy()


@dataclass
class RecommenderIndex(Catalogue, Scoring, FoldIn):
    """Everything serving needs, in memory. Build with :meth:`load` or :meth:`from_frames`."""

    mu: float
    reg_param: float
    user_bias_reg: float
    user_ids: np.ndarray  # (n_users,)
    user_factors: np.ndarray  # (n_users, rank) float64
    user_bias: np.ndarray  # (n_users,)
    item_ids: np.ndarray  # (n_items,) movies with factors
    item_factors: np.ndarray  # (n_items, rank)
    item_bias: np.ndarray  # (n_items,)
    item_support: np.ndarray  # (n_items,) training ratings per movie
    movies: pd.DataFrame  # metadata aligned with item_ids (title, genres, year, links)
    rated: RatedMovies  # every known rating, per user position (history, exclusion, profile)
    pick_user_factors: np.ndarray | None = None  # (n_users, k) implicit ALS, aligned with user_ids
    pick_item_factors: np.ndarray | None = None  # (n_items, k) aligned with item_ids
    pick_alpha: float = 0.0
    pick_reg: float = 0.0
    pick_neutral: float = 0.0  # ratings above it are liked (see engine.recommender.picks)
    #: the predicted stars' blend and its movie neighbours (engine.recommender.neighbours); None in models
    #: saved before 2026-12-03 (and in models without top picks): the explicit model's score alone
    neighbours: NeighbourIndex | None = None
    blend: Blend | None = None
    #: top picks' second ranker (engine.recommender.ease); None in models saved before 2026-12-03's EASE
    ease: EaseIndex | None = None
    _pick_gram: np.ndarray | None = field(default=None, repr=False)
    _user_pos: dict = field(default_factory=dict, repr=False)
    _item_pos: dict = field(default_factory=dict, repr=False)
    _unit_items: np.ndarray | None = field(default=None, repr=False)
    _scan_items: np.ndarray | None = field(default=None, repr=False)  # float32 copies for whole-catalogue scans
    _scan_unit: np.ndarray | None = field(default=None, repr=False)
    _scan_picks: np.ndarray | None = field(default=None, repr=False)
    _mu_item_bias: np.ndarray | None = field(default=None, repr=False)
    _genre_masks: dict = field(default_factory=dict, repr=False)
    _ratings: pd.DataFrame | None = field(default=None, repr=False)
    _title_keys: pd.Series | None = field(default=None, repr=False)
    #: movieId -> the title as people write it ("The Matrix (1999)"), made once at load
    readable_titles: pd.Series | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self._user_pos = {int(u): i for i, u in enumerate(self.user_ids)}
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self._unit_items = self.item_factors / np.where(norms == 0, 1, norms)
        # Scans read float32 (Spark's factors are float32: nothing is lost in the copy), half the bytes
        # per query; the few movies shown are rescored in float64 (scoring.RESCORE_MARGIN).
        self._scan_items = self.item_factors.astype(np.float32)
        self._scan_unit = self._unit_items.astype(np.float32)
        self._mu_item_bias = self.mu + self.item_bias
        if self.pick_item_factors is not None:
            self._pick_gram = self.pick_item_factors.T @ self.pick_item_factors
            self._scan_picks = self.pick_item_factors.astype(np.float32)
        self._index_catalogue()

    # ------------------------------------------------------------------ lookups
    @property
    def rank(self) -> int:
        return self.item_factors.shape[1]

    @property
    def has_picks(self) -> bool:
        """Whether the model can order lists as top picks (models saved before cannot)."""
        return self.pick_item_factors is not None

    @property
    def ratings(self) -> pd.DataFrame:
        """Every known rating as a (userId, movieId, rating) frame, grouped by user. Built on first use
        from :attr:`rated` (serving never needs it: at ml-32m it is 0.7 GiB, the arrays 0.25)."""
        if self._ratings is None:
            r = self.rated
            served = pd.DataFrame(
                {USER: np.repeat(self.user_ids, np.diff(r.indptr)), ITEM: self.item_ids[r.items], RATING: r.values}
            )
            self._ratings = pd.concat([served, r.others], ignore_index=True) if len(r.others) else served
        return self._ratings

    def has_user(self, user_id: int) -> bool:
        return int(user_id) in self._user_pos

    def _user(self, user_id) -> int:
        try:
            return self._user_pos[int(user_id)]
        except (KeyError, ValueError, TypeError):
            raise UnknownIdError(
                f"Unknown user id {user_id!r}: the model knows "
                f"{len(self.user_ids):,} users, ids {self.user_ids.min()}-"
                f"{self.user_ids.max()}. Pick one of them or use new-user mode."
            ) from None

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
        return {
            "ratings": int(len(pos)),
            "mean_rating": float(ratings.mean()) if len(pos) else None,
            "liked": int((ratings >= LIKED_RATING).sum()),
            "top_genres": ranked[:top],
            "not_in_model": int(self.rated.not_in_model[u]),
        }

    # ------------------------------------------------------------------ building
    @classmethod
    def from_frames(
        cls,
        *,
        mu: float,
        reg_param: float,
        user_bias_reg: float,
        user_frame: pd.DataFrame,
        item_frame: pd.DataFrame,
        movies: pd.DataFrame,
        ratings: pd.DataFrame,
        pick_user_frame: pd.DataFrame | None = None,
        pick_item_frame: pd.DataFrame | None = None,
        pick_params: dict | None = None,
        neighbour_frame: pd.DataFrame | None = None,
        blend_params: dict | None = None,
        ease_frame: pd.DataFrame | None = None,
        ease_params: dict | None = None,
    ) -> "RecommenderIndex":
        """From the saved tables: ``user_frame`` [userId, user_bias, f0..], ``item_frame``
        [movieId, item_bias, n_ratings, f0..], catalogue ``movies`` and all ``ratings``
        [userId, movieId, rating] (kept as :class:`RatedMovies`, not as the frame);
        optionally the top-picks factors [userId|movieId, f0..] and ``pick_params``
        {alpha, reg_param}, and the movie neighbours [movieId, neighbourId, similarity] with the
        ``blend_params`` of the predicted stars (both, and the top picks, or no blend), and top picks' EASE
        Gram [movieId, otherId, value] with its ``ease_params`` (both, and the top picks, or none)."""
        fcols = [c for c in item_frame.columns if c.startswith("f") and c[1:].isdigit()]
        item_frame = item_frame.sort_values(ITEM).reset_index(drop=True)
        user_frame = user_frame.sort_values(USER).reset_index(drop=True)
        meta = movies.set_index(ITEM).reindex(item_frame[ITEM]).reset_index()
        meta[TITLE] = meta[TITLE].fillna("(unknown title)")
        meta[GENRES] = meta[GENRES].fillna("(no genres listed)")
        user_ids, item_ids = user_frame[USER].to_numpy(np.int64), item_frame[ITEM].to_numpy(np.int64)
        return cls(
            mu=float(mu),
            reg_param=float(reg_param),
            user_bias_reg=float(user_bias_reg),
            user_ids=user_ids,
            user_factors=user_frame[fcols].to_numpy(np.float64),
            user_bias=user_frame["user_bias"].to_numpy(np.float64),
            item_ids=item_ids,
            item_factors=item_frame[fcols].to_numpy(np.float64),
            item_bias=item_frame["item_bias"].to_numpy(np.float64),
            item_support=item_frame["n_ratings"].to_numpy(np.int64),
            movies=meta,
            rated=RatedMovies.build(ratings, user_ids, item_ids),
            **cls._pick_fields(user_frame, item_frame, pick_user_frame, pick_item_frame, pick_params),
            **cls._blend_fields(item_ids, pick_item_frame, neighbour_frame, blend_params),
            **cls._ease_fields(item_ids, pick_item_frame, ease_frame, ease_params),
        )

    @staticmethod
    def _ease_fields(item_ids, pick_item_frame, ease_frame, ease_params) -> dict:
        if pick_item_frame is None or ease_frame is None or not ease_params or not ease_params.get("share"):
            return {}
        try:
            return {"ease": EaseIndex.from_frame(ease_frame, ease_params, item_ids)}
        except ValueError as exc:
            raise ValueError(f"ease_gram.parquet {exc}") from exc

    @staticmethod
    def _blend_fields(item_ids, pick_item_frame, neighbour_frame, blend_params) -> dict:
        if pick_item_frame is None or neighbour_frame is None or not blend_params:
            return {}
        return {"neighbours": NeighbourIndex.from_frame(neighbour_frame, item_ids), "blend": Blend.of(blend_params)}

    @staticmethod
    def _pick_fields(user_frame, item_frame, pick_user_frame, pick_item_frame, params) -> dict:
        if pick_user_frame is None or pick_item_frame is None:
            return {}
        return {
            "pick_user_factors": picks.align(pick_user_frame, USER, user_frame[USER].to_numpy()),
            "pick_item_factors": picks.align(pick_item_frame, ITEM, item_frame[ITEM].to_numpy()),
            "pick_alpha": float(params["alpha"]),
            "pick_reg": float(params["reg_param"]),
            "pick_neutral": float(params.get("neutral", 0.0)),
        }

    @classmethod
    def load(cls, model_dir) -> "RecommenderIndex":
        """Load from a saved model folder (see :mod:`engine.recommender.model_tables`, which checks every
        table it reads); :class:`~engine.recommender.model_store.ModelError` names what is wrong."""
        from .model_store import ModelError
        from .model_tables import read_serving_tables

        no_huge_page_advice()
        tables = read_serving_tables(model_dir)
        try:
            index = cls.from_frames(**tables)
            del tables  # the ratings frame: kept as arrays now; give its memory back (Arrow keeps a pool)
            pa.default_memory_pool().release_unused()
            return index
        except (KeyError, ValueError, TypeError, IndexError) as exc:  # what the checks did not foresee
            log.exception("loading %s", model_dir)
            raise ModelError(
                f"{model_dir} cannot be served ({type(exc).__name__}: {exc}). Retrain it, or "
                "make another saved model current (`python -m engine models --use NAME`, "
                "or Saved models on the app's Model page)."
            ) from exc
