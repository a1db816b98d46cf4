"""Top picks' second ranker: EASE, a closed-form item-to-item model (Steck 2019).

The implicit ALS of :mod:`engine.recommender.picks` finds what a person will watch and like from a few dozen
factors. EASE learns, for every pair of movies, how much rating one says about the other: the weights ``B``
minimise ``|X - X B|^2 + lam |B|^2`` with a zero diagonal (a movie may not predict itself), and have the
closed form ``P = (X'X + lam I)^-1``, ``B_ij = -P_ij / P_jj``. ``X`` is people x movies, each rating
entered as a weight: :attr:`EaseConfig.liked` for 4 stars and above, ``middle`` for 3-3.5, ``disliked``
below. A person's EASE score of a movie is ``sum_j w_j B_ji`` over the movies ``j`` they rated.

Top picks rank by ``(1 - share) * z(implicit score) + share * z(EASE score)``, each score standardised over
the catalogue for that person (z: minus its mean, over its standard deviation), so neither model's scale
decides. Both are exact sums of one term per rated movie, so "because you rated..." still splits the score.

Spark computes the Gram matrix ``X'X`` from the training ratings (:func:`gram`: MLlib's ``CoordinateMatrix``
of the weights, one sparse row per person, ``computeGramianMatrix``; all in the JVM); the driver inverts it.
Only movies with at least ``min_ratings`` training ratings take part, and at most ``max_movies`` of them (the
most rated): the Gram is dense on the driver (n^2 doubles: 5,000 movies are 200 MB and invert in seconds).
Other movies get EASE score 0 (the person's mean) and are ranked by the implicit model. The saved model
keeps the Gram (``ease_gram.parquet``); :class:`EaseIndex` inverts it once at load and serves from numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..data.movielens import ITEM, RATING, USER
from .evaluation import RELEVANT_RATING

OTHER = "otherId"
VALUE = "value"
#: ratings from here up to RELEVANT_RATING (exclusive) count as "middle", below as "disliked"
MIDDLE_FROM = 3.0
#: the driver holds the Gram dense: Spark's computeGramianMatrix allows up to 65,535 columns
MOST_MOVIES = 20_000
WEIGHTS = ("lam", "liked", "middle", "disliked", "share")
#: a person's EASE scores gather B's rows of the movies they rated, GATHER_BLOCK rows at a time, up to
#: 1/GATHER_UP_TO of B's rows; above that one pass over all of B is faster (measured: bench at 5,000 movies)
GATHER_BLOCK = 64
GATHER_UP_TO = 4


@dataclass(frozen=True)
class EaseConfig:
    """EASE's settings and its share of the top-picks order, chosen by NDCG@10 on the validation split carved
    from split seed 42's training split (hash seed 7; ``bench/bench_picks.py ease``; docs/recommender.md)."""

    #: movies with fewer training ratings are left out of the Gram (scored by the implicit model alone)
    min_ratings: int = 10
    #: at most this many movies, the most rated (the Gram is n x n on the driver)
    max_movies: int = 5000
    #: the ridge penalty lam
    lam: float = 400.0
    #: X's entry for a rating of 4 stars and above, 3-3.5, and below 3
    liked: float = 1.0
    middle: float = 0.5
    disliked: float = -0.2
    #: EASE's share of the top-picks order (0: the implicit model alone, no Gram computed)
    share: float = 0.5

    def check(self) -> "EaseConfig":
        for name in ("min_ratings", "max_movies"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"EASE {name}={value!r}: give a whole number, 1 or more.")
        if self.max_movies > MOST_MOVIES:
            raise ValueError(f"EASE max_movies={self.max_movies}: at most {MOST_MOVIES:,} (the Gram is dense).")
        for name in WEIGHTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"EASE {name}={value!r}: give a finite number.")
        if self.lam <= 0:
            raise ValueError(f"EASE lam={self.lam}: give a number above 0.")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"EASE share={self.share}: give a number from 0 to 1.")
        return self

    @property
    def on(self) -> bool:
        return self.share > 0


#: top picks from the implicit model alone (no Gram): ``evaluate`` of models saved before EASE
OFF = EaseConfig(share=0.0)


def weights_of(ratings: np.ndarray, cfg) -> np.ndarray:
    """X's entries for these ratings (float64)."""
    r = np.asarray(ratings, dtype=np.float64)
    return np.where(r >= RELEVANT_RATING, cfg.liked, np.where(r >= MIDDLE_FROM, cfg.middle, cfg.disliked))


def params_of(cfg: EaseConfig) -> dict:
    """What a saved model records about EASE (params.json ``ease``)."""
    return asdict(cfg)


def gram(train_df, cfg: EaseConfig) -> tuple[np.ndarray, np.ndarray]:
    """(movie ids, sorted; the Gram ``X'X`` over them, float64) from Spark's training ratings
    (userId, movieId, rating). The movies are those with at least ``min_ratings`` ratings, the
    ``max_movies`` most rated of them (ties: lower id)."""
    from pyspark.mllib.common import callMLlibFunc
    from pyspark.mllib.linalg.distributed import CoordinateMatrix
    from pyspark.sql import functions as F

    cfg.check()
    counts = train_df.groupBy(ITEM).count().filter(F.col("count") >= cfg.min_ratings).toPandas()
    counts = counts.sort_values(["count", ITEM], ascending=[False, True], kind="stable").head(cfg.max_movies)
    ids = np.sort(counts[ITEM].to_numpy(np.int64))
    n = len(ids)
    if n == 0:
        return ids, np.zeros((0, 0))
    spark = train_df.sparkSession
    columns = spark.createDataFrame(pd.DataFrame({ITEM: ids.astype(np.int64), "col": np.arange(n, dtype=np.int64)}))
    r = F.col(RATING)
    w = (
        F.when(r >= RELEVANT_RATING, F.lit(float(cfg.liked)))
        .when(r >= MIDDLE_FROM, F.lit(float(cfg.middle)))
        .otherwise(F.lit(float(cfg.disliked)))
    )
    # (row: the person's id, column: the movie's position, weight), as MLlib's coordinate matrix reads them.
    # The JVM builds each person's sparse row and sums their outer products: no Python worker takes part.
    # Its rows are every possible id (2^31: ids are 32-bit), so no job is spent finding the largest.
    entries = train_df.join(F.broadcast(columns), ITEM).select(
        F.col(USER).cast("long"), F.col("col").cast("long"), w.cast("double")
    )
    matrix = CoordinateMatrix(callMLlibFunc("createCoordinateMatrix", entries, 2**31, n))
    return ids, matrix.toIndexedRowMatrix().computeGramianMatrix().toArray()


def as_table(ids: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    """The Gram's upper triangle (diagonal included), non-zero entries, as saved: movieId, otherId, value."""
    i, j = np.triu_indices(len(ids))
    keep = g[i, j] != 0
    return pd.DataFrame({ITEM: ids[i[keep]], OTHER: ids[j[keep]], VALUE: g[i[keep], j[keep]]})


def from_table(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ids, the symmetric Gram) from :func:`as_table`'s frame; ValueError names what is wrong."""
    a, b = frame[ITEM].to_numpy(np.int64), frame[OTHER].to_numpy(np.int64)
    if (a > b).any():
        raise ValueError("has entries below the diagonal (movieId > otherId)")
    ids = np.unique(np.concatenate([a, b]))
    i, j = np.searchsorted(ids, a), np.searchsorted(ids, b)
    if pd.Series(i * len(ids) + j).duplicated().any():
        raise ValueError("repeats a pair of movies")
    g = np.zeros((len(ids), len(ids)))
    g[i, j] = frame[VALUE].to_numpy(np.float64)
    g[j, i] = g[i, j]
    if (np.diag(g) <= 0).any():
        raise ValueError("has a movie without its own entry on the diagonal")
    return ids, g


def weights(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE's B (float64) from the Gram: ``P = (G + lam I)^-1``, ``B_ij = -P_ij / P_jj``, zero diagonal."""
    p = np.linalg.inv(g + lam * np.eye(len(g)))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


@dataclass(frozen=True)
class EaseIndex:
    """EASE for serving: its movies' catalogue positions, B (float32) and the settings.

    ``b`` has one more row and column than there are EASE movies, all zeros, where every other movie points
    (:attr:`column`): a rated or scored movie outside EASE then reads zeros, with no masks on the hot path."""

    positions: np.ndarray  # (n,) catalogue positions of the EASE movies
    column: np.ndarray  # (n_catalogue,) each catalogue movie's column in B; n (the zero one) if not in it
    b: np.ndarray  # (n + 1, n + 1) float32
    cfg: EaseConfig
    #: B transposed, contiguous: a few movies' scores read their rows of it, not a strided column of B
    bt: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "bt", np.ascontiguousarray(self.b.T))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, params: dict, item_ids: np.ndarray) -> "EaseIndex":
        cfg = EaseConfig(**{k: params[k] for k in asdict(OFF) if k in params}).check()
        ids, g = from_table(frame)
        positions = np.searchsorted(item_ids, ids)
        known = positions < len(item_ids)
        known[known] = item_ids[positions[known]] == ids[known]
        if not known.all():
            raise ValueError(f"names movie {int(ids[~known][0])}, which has no factors in this model")
        n = len(ids)
        column = np.full(len(item_ids), n, np.int64)
        column[positions] = np.arange(n)
        b = np.zeros((n + 1, n + 1), np.float32)
        b[:n, :n] = weights(g, cfg.lam)
        return cls(positions, column, b, cfg)

    @property
    def nbytes(self) -> int:
        return self.b.nbytes + self.bt.nbytes + self.column.nbytes + self.positions.nbytes

    def _dense(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """A person's row of X over B's rows (float64; the zero row collects the movies outside EASE)."""
        dense = np.zeros(len(self.b))
        dense[self.column[pos]] = weights_of(values, self.cfg)
        dense[-1] = 0.0
        return dense

    def scores(self, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """EASE's score of each EASE movie (float64, B's column order) for a person's ratings."""
        n = len(self.positions)
        rows = self.column[pos]
        if rows.size * GATHER_UP_TO > n:  # most of B: one pass over it, no copy
            return (self._dense(pos, values).astype(np.float32) @ self.b)[:n].astype(np.float64)
        # those rows of B, a block at a time (each block's copy stays in the CPU's cache)
        w = weights_of(values, self.cfg).astype(np.float32)
        out = np.zeros(n + 1, np.float32)
        for start in range(0, rows.size, GATHER_BLOCK):
            out += w[start : start + GATHER_BLOCK] @ self.b[rows[start : start + GATHER_BLOCK]]
        return out[:n].astype(np.float64)

    def exact(self, targets: np.ndarray, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """float64 EASE scores of the catalogue positions ``targets`` (0 for movies outside EASE)."""
        return self.bt[self.column[targets]].astype(np.float64) @ self._dense(pos, values)

    def contributions(self, targets: np.ndarray, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(len(targets), len(pos)): each rated movie's term ``w_j B_jt`` of each target's EASE score
        (0 where either movie is outside EASE)."""
        block = self.bt[self.column[targets]][:, self.column[pos]]  # (len(targets), len(pos))
        return block.astype(np.float64) * weights_of(values, self.cfg)
