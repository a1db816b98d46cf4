"""Train, evaluate and tune the ALS recommender on Spark; export what serving needs.

Stages: ratings -> seeded split -> fit (bias-corrected ALS for predicted
ratings, implicit ALS for the order of top picks, :mod:`engine.recommender.picks`) ->
evaluate (RMSE against plain ALS and the bias-only baseline; ranking of both
orders against popularity) -> export factors -> save. Tuning over a grid is
:mod:`engine.recommender.tuning`.

Every long function takes ``progress(fraction, message)``; the CLI prints it,
the app draws a progress bar.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from ..data.movielens import GENRES, ITEM, RATING, TIME, TITLE, USER, MovieLens
from ..data.spark_release import SparkRelease, as_spark_release
from ..jobs import with_eta
from . import ease, picks
from . import neighbours as movie_neighbours
from .als import BiasCorrectedALS, bias_baseline_predictions, blocks_for, check_param, plain_als
from .evaluation import RELEVANT_RATING, ranking_keys, ranking_metrics, relevant_items, rmse
from .model_store import save_model
from .serving import RecommenderIndex

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def log_progress(fraction: float, message: str) -> None:
    log.info("[%3.0f%%] %s", 100 * fraction, message)


@dataclass
class ALSConfig:
    """Hyper-parameters and protocol.

    rank, max_iter and reg_param were chosen on a validation split carved from split seed 42's training
    split (the hash split again, seed 7; test untouched), 2026-12-03: validation RMSE 0.8449 at rank 64,
    15 iterations, regParam 0.13, against 0.8631 for the earlier rank 16, 20 iterations, regParam 0.1
    (regParam 0.15 / 0.17 / 0.2: 0.8453 / 0.8462 / 0.8481 at rank 64; ranks 32 / 48 / 100: 0.8475 / 0.8455
    / 0.8452; 20 iterations: the same as 15; Surprise's tuned SVD: 0.8473). docs/recommender.md has the
    test figures of every seed.
    """

    rank: int = 64
    max_iter: int = 15
    reg_param: float = 0.13
    user_bias_reg: float = 5.0
    item_bias_reg: float = 5.0
    seed: int = 42
    split_seed: int = 42
    test_fraction: float = 0.2
    #: "random": each rating's side by a hash of (user, movie, split_seed); "time": each user's last
    #: ``test_fraction`` of ratings by timestamp (:func:`split`). Models are trained on the random split;
    #: ``evaluate --split-by time`` measures the same settings on the future.
    split_by: str = "random"
    ranking_k: int = 10
    #: Top-N lists leave out movies with fewer training ratings than this: a
    #: predicted 4.9 from three ratings is noise, and users agree (see README).
    min_ratings: int = 20
    #: ALS user/item blocks of all three fits; 0: by the data's size (:func:`~engine.recommender.als.blocks_for`:
    #: 2 up to 2 M ratings, else Spark's 10). The factors' random start depends on the blocks: 2 against
    #: 10 moved ml-latest-small's test RMSE by 0.0005 and made its train + evaluate 2.3x faster.
    num_blocks: int = 0

    def estimator(self) -> BiasCorrectedALS:
        """The bias-corrected ALS these settings describe (``num_blocks`` 0: the session's, see :func:`blocks_for`)."""
        return BiasCorrectedALS(
            rank=self.rank,
            maxIter=self.max_iter,
            regParam=self.reg_param,
            userBiasReg=self.user_bias_reg,
            itemBiasReg=self.item_bias_reg,
            seed=self.seed,
            numBlocks=self.num_blocks,
        )

    def check(self) -> "ALSConfig":
        """Refuse values Spark would refuse or misuse, before any Spark job (``ValueError``)."""
        for name, value, label in (
            ("rank", self.rank, None),
            ("maxIter", self.max_iter, None),
            ("regParam", self.reg_param, None),
            ("userBiasReg", self.user_bias_reg, None),
            ("itemBiasReg", self.item_bias_reg, None),
            ("seed", self.seed, None),
            ("seed", self.split_seed, "split seed"),
        ):
            check_param(name, value, label)
        if self.split_by not in SPLITS:
            raise ValueError(f"split_by must be one of {', '.join(SPLITS)} (got {self.split_by!r}).")
        if not (isinstance(self.test_fraction, (int, float)) and 0 < self.test_fraction < 1):
            raise ValueError(f"test_fraction must be between 0 and 1 (got {self.test_fraction!r}).")
        check_param("numBlocks", self.num_blocks, "num_blocks")
        for name in ("ranking_k", "min_ratings"):
            value, low = getattr(self, name), 1 if name == "ranking_k" else 0
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low} (got {value!r}).")
        return self


def check_picks_config(cfg: picks.PicksConfig) -> None:
    """:meth:`ALSConfig.check` for the top-picks model's implicit ALS."""
    for name, value in (
        ("rank", cfg.rank),
        ("maxIter", cfg.max_iter),
        ("regParam", cfg.reg_param),
        ("alpha", cfg.alpha),
        ("seed", cfg.seed),
    ):
        check_param(name, value, f"top-picks {name}")
    neutral = cfg.neutral
    if isinstance(neutral, bool) or not isinstance(neutral, (int, float)) or not 0 <= neutral <= 5:
        raise ValueError(f"top-picks neutral={neutral!r}: give a rating from 0 to 5 (0: every rating counts as liked).")


def worse_than_baseline(metrics: dict) -> str | None:
    """Why a model should not be served: its test RMSE (the stars shown), or its bias-corrected ALS's alone,
    is worse than the bias-only baseline's. The blend's weights were fitted for a sound ALS: one that cannot
    beat the biases (broken settings) is held back even where the blend makes up for it."""
    baseline = metrics.get("bias_baseline_rmse")
    if baseline is None:
        return None
    for key, what in (("test_rmse", "test RMSE"), ("explicit_rmse", "bias-corrected ALS's test RMSE")):
        value = metrics.get(key)
        if value is not None and value > baseline:
            return (
                f"its {what} {value:.4f} is worse than the bias-only baseline's {baseline:.4f} "
                "(too few iterations, too little regularisation or too high a rank?)"
            )
    return None


def ratings_frame(spark, data: "SparkRelease | MovieLens", extra: pd.DataFrame | None = None, with_time=False):
    """Spark DataFrame (userId, movieId, rating) of the release, plus ``extra`` ratings (people's own,
    a few thousand at most: sent from the driver). ``with_time``: with each rating's ``timestamp`` too
    (``extra`` must have one then); a ``ValueError`` when the release has none."""
    release = as_spark_release(spark, data)
    columns, types = [USER, ITEM, RATING], {USER: "int32", ITEM: "int32", RATING: "float32"}
    if with_time:
        if release.timed is None:
            raise ValueError(f"{release.name}: its ratings have no timestamp column, so no temporal split.")
        ratings, columns, types = release.timed(), columns + [TIME], {**types, TIME: "int64"}
    else:
        ratings = release.ratings
    if extra is not None and len(extra):
        if with_time and TIME not in extra.columns:
            raise ValueError("The temporal split needs a timestamp for every added rating.")
        ratings = ratings.unionByName(spark.createDataFrame(extra[columns].astype(types)))
    return ratings


#: The split hashes each rating into this many buckets; ``test_fraction`` of them are test.
SPLIT_BUCKETS = 1_000_000


#: ALSConfig.split_by's choices.
SPLITS = ("random", "time")


def split(ratings_df, cfg: ALSConfig):
    """Train/test split of (userId, movieId, rating); test keeps only users and movies seen in train.

    ``cfg.split_by`` "random" (the default): each rating's side is decided by a hash of (userId,
    movieId, split seed), not by its partition: the same rating lands on the same side whether Spark
    read Parquet or CSV, on ``local[*]`` with 2 cores or on a cluster (``randomSplit`` draws per
    partition, so its split moved with the partitioning), and no sort of the data is needed.

    "time": ``ratings_df`` has a ``timestamp`` column (:func:`ratings_frame` ``with_time``); each user's
    last ``floor(n * test_fraction)`` ratings by time (ties by movie id; at least one when the user has
    two or more) are test, so training never sees a rating made after the ones it is tested on for that
    user. Both sides keep (userId, movieId, rating) only.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if cfg.split_by == "time":
        n = F.count(F.lit(1)).over(Window.partitionBy(USER))
        position = F.row_number().over(Window.partitionBy(USER).orderBy(TIME, ITEM))  # 1 = the earliest
        n_test = F.when(n > 1, F.greatest(F.lit(1), F.floor(n * F.lit(float(cfg.test_fraction))))).otherwise(0)
        ratings_df = ratings_df.withColumn("_in_test", position > n - n_test)
        in_test = F.col("_in_test")
    else:
        bucket = F.pmod(F.xxhash64(F.col(USER), F.col(ITEM), F.lit(int(cfg.split_seed))), F.lit(SPLIT_BUCKETS))
        in_test = bucket < F.lit(int(round(cfg.test_fraction * SPLIT_BUCKETS)))
    train = ratings_df.filter(~in_test).select(USER, ITEM, RATING).cache()
    test = (
        ratings_df.filter(in_test)
        .select(USER, ITEM, RATING)
        .join(train.select(USER).distinct(), USER, "left_semi")
        .join(train.select(ITEM).distinct(), ITEM, "left_semi")
        .cache()
    )
    return train, test


def export_tables(model, train_counts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pandas user/item tables (id, bias, f0..) from a fitted :class:`BiasCorrectedALSModel`."""

    def wide(factors_df, id_name, bias_df, bias_name):
        pdf = factors_df.toPandas()
        mat = np.vstack(pdf["features"].to_numpy()).astype(np.float32)
        out = pd.DataFrame(mat, columns=[f"f{i}" for i in range(mat.shape[1])])
        out.insert(0, id_name, pdf["id"].astype(np.int64).to_numpy())
        biases = bias_df.toPandas()
        out = out.merge(biases, on=id_name, how="left").fillna({bias_name: 0.0})
        cols = [id_name, bias_name] + [c for c in out.columns if c.startswith("f")]
        return out[cols]

    users = wide(model.als_model.userFactors, USER, model.user_bias, "user_bias")
    items = wide(model.als_model.itemFactors, ITEM, model.item_bias, "item_bias")
    items = items.merge(train_counts, on=ITEM, how="left").fillna({"n_ratings": 0})
    items["n_ratings"] = items["n_ratings"].astype(np.int64)
    items.insert(2, "n_ratings", items.pop("n_ratings"))
    return users, items


def movie_counts(ratings_df) -> pd.DataFrame:
    """Per movie: ratings and their mean (a Spark job; one row per rated movie comes back)."""
    from pyspark.sql import functions as F

    out = ratings_df.groupBy(ITEM).agg(F.count("*").alias("total_ratings"), F.avg(RATING).alias("mean_rating"))
    return out.toPandas().astype({ITEM: np.int64, "total_ratings": np.int64, "mean_rating": float})


def movie_catalogue(movies: pd.DataFrame, links: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """movies + links + whole-data rating counts and means (:func:`movie_counts`), as saved with a model."""
    out = movies.merge(links, on=ITEM, how="left").merge(counts, on=ITEM, how="left")
    out["total_ratings"] = out["total_ratings"].fillna(0).astype(np.int64)
    out["mean_rating"] = out["mean_rating"].astype(float).round(3)
    return out[[ITEM, TITLE, GENRES, "year", "imdbId", "tmdbId", "total_ratings", "mean_rating"]]


def ranking_users(test, has_user, max_users: int = 2000, seed: int = 0) -> tuple[list[int], int]:
    """The users the ranking evaluation asks (those with a relevant test rating, known to the model;
    at most ``max_users``, a seeded sample) and the number of test ratings: one Spark job, one row
    per user back."""
    from pyspark.sql import functions as F

    per_user = (
        test.groupBy(USER)
        .agg(F.count("*").alias("n"), F.sum((F.col(RATING) >= RELEVANT_RATING).cast("int")).alias("relevant"))
        .toPandas()
    )
    users = sorted(int(u) for u in per_user.loc[per_user["relevant"] > 0, USER] if has_user(u))
    if len(users) > max_users:
        users = sorted(np.random.default_rng(seed).choice(users, max_users, replace=False).tolist())
    return users, int(per_user["n"].sum())


def rows_of(ratings_df, users: list[int]) -> pd.DataFrame:
    """The ratings of ``users`` (the sampled few), brought to the driver."""
    from pyspark.sql import functions as F

    wanted = ratings_df.sparkSession.createDataFrame(
        pd.DataFrame({USER: np.asarray(users, dtype=np.int32)}), schema=f"{USER} int"
    )  # the schema said: none can be inferred from no users
    return ratings_df.join(F.broadcast(wanted), USER, "left_semi").toPandas()


def evaluate_ranking(
    index: RecommenderIndex,
    train_pdf: pd.DataFrame,
    test_pdf: pd.DataFrame,
    k: int,
    min_ratings: int,
    popular_ids: np.ndarray,
) -> dict:
    """Ranking metrics of the model (with and without the support filter) and popularity, for the users
    of ``test_pdf`` (:func:`ranking_users`; ``train_pdf``: their training ratings; ``popular_ids``: every
    movie, most rated in train first)."""
    relevant = relevant_items(test_pdf)
    users = sorted(u for u in relevant if index.has_user(u))
    relevant = {u: relevant[u] for u in users}
    rated = train_pdf.groupby(USER)[ITEM].agg(set).to_dict()
    pop_recs, model_recs, filtered_recs, pick_recs, filtered_picks = {}, {}, {}, {}, {}
    for u in users:
        seen = rated.get(u, set())
        pop_recs[u] = [m for m in popular_ids[: k + len(seen)] if m not in seen][:k]
        # what index.recommend(u, k, min_ratings=..., explain=False) lists, each order scored once
        model_recs[u], filtered_recs[u] = (ids.tolist() for ids in index.top_ids(u, k, (0, min_ratings)))
        if index.has_picks:
            pick_recs[u], filtered_picks[u] = (
                ids.tolist() for ids in index.top_ids(u, k, (0, min_ratings), order="picks")
            )
    out = {
        "model": ranking_metrics(filtered_recs, relevant, k),
        "model_unfiltered": ranking_metrics(model_recs, relevant, k),
        "popularity": ranking_metrics(pop_recs, relevant, k),
        "min_ratings": min_ratings,
        "relevant_rating": RELEVANT_RATING,
    }
    if index.has_picks:
        out["picks"] = ranking_metrics(pick_recs, relevant, k)
        out["picks_filtered"] = ranking_metrics(filtered_picks, relevant, k)
    return out


#: Up to this many ratings, the comparison and top-picks fits run beside the main fit (see train_and_evaluate).
BESIDE_UP_TO = 2_000_000

#: Each stage's share (percent) of a cold train's wall time, measured (docs/benchmarks.md, 15th session):
#: with the fits beside each other on ml-latest-small (28 s: the fits' phase holds the comparison, the top
#: picks, the Gram and the neighbours, and the blend's scoring runs beside the ranking) and one at a time on
#: ml-synth-5m (422 s: the neighbours' self-join grows fastest). The progress fractions are the running sums
#: over the stages a train runs, so the time left that ``with_eta`` extrapolates from the pace holds at
#: either size.
STAGE_SHARES = {
    True: dict(
        split=2, fit=77, neighbours=0, scoring=3, baseline=1, plain=0, picks=0, blend=0, ease=2, export=7, ranking=8
    ),
    False: dict(
        split=0.1,
        fit=20.8,
        neighbours=34.0,
        scoring=1.6,
        baseline=0.1,
        plain=20.6,
        picks=6.3,
        blend=7.9,
        ease=4.6,
        export=0.3,
        ranking=3.6,
    ),
}


def stage_fractions(beside: bool, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The progress fraction at which each stage of a train starts (:data:`STAGE_SHARES`; the stages in
    ``skip`` take no time)."""
    shares = {k: 0.0 if k in skip else float(v) for k, v in STAGE_SHARES[beside].items()}
    total, start, out = sum(shares.values()), 0.0, {}
    for stage, share in shares.items():
        out[stage] = start / total
        start += share
    return out


def _start(pool: ThreadPoolExecutor | None, fn, *args):
    """``fn(*args)`` started on ``pool``; without one, run where its ``.result()`` is asked for (so the
    fits run one at a time, in the order the progress messages say)."""
    if pool is not None:
        return pool.submit(fn, *args)

    class Later:
        def result(self):
            return fn(*args)

    return Later()


def _timed(fit, *args):
    """(what ``fit(*args)`` returns, its seconds)."""
    t0 = time.perf_counter()
    return fit(*args), time.perf_counter() - t0


def _blend_rmse(test, train, model, picks_model, neighbour_df, blend) -> float:
    """Test RMSE of the blended stars (the model's ``test_rmse``)."""
    components = movie_neighbours.blend_components(test, model, picks_model, neighbour_df, train)
    return round(rmse(movie_neighbours.blend_predictions(components, blend)), 5)


def _neighbours(train, biases, cfg: "movie_neighbours.NeighbourConfig"):
    """(the movie neighbours as Spark has them, cached; as the saved table; seconds) from the residuals of
    ``train`` from ``biases`` (mu and the bias tables of the bias-corrected model)."""
    t0 = time.perf_counter()
    df = movie_neighbours.movie_neighbours(movie_neighbours.residuals_of(train, biases), cfg).cache()
    return df, movie_neighbours.as_table(df.toPandas()), time.perf_counter() - t0


def _plain_rmse(cfg: ALSConfig, train, test) -> float:
    """Test RMSE of Spark's own ALS with the model's settings, on raw ratings (the comparison)."""
    plain = plain_als(cfg.rank, cfg.max_iter, cfg.reg_param, cfg.seed, cfg.num_blocks).fit(train)
    return round(rmse(plain.transform(test)), 5)


#: ``train_and_evaluate(blend=NO_BLEND)``: the bias-corrected ALS's stars alone (no neighbours are found)
NO_BLEND = movie_neighbours.Blend()


def train_and_evaluate(
    spark,
    data: "SparkRelease | MovieLens",
    cfg: ALSConfig | None = None,
    progress: Progress = log_progress,
    extra_ratings: pd.DataFrame | None = None,
    compare_baselines: bool = True,
    picks_cfg: picks.PicksConfig | None = None,
    blend: "movie_neighbours.Blend | None" = None,
    neighbours_cfg: "movie_neighbours.NeighbourConfig | None" = None,
    ease_cfg: "ease.EaseConfig | None" = None,
) -> dict:
    """Fit the default models on the seeded train split and measure them on test.

    ``data``: the release as Spark reads it (:func:`~engine.data.spark_release.open_release`), or one held
    in pandas (small data). The ratings stay in Spark; the driver receives the factors, per-movie
    counts and the ratings of the users the ranking evaluation samples.

    The predicted stars are ``blend`` (default :data:`~engine.recommender.neighbours.DEFAULT_BLEND`) of the
    bias-corrected ALS, the movie neighbourhood (``neighbours_cfg``) and the top-picks score; ``test_rmse``
    is the blend's, ``explicit_rmse`` the bias-corrected ALS's alone (``NO_BLEND``: no blend, no neighbours).
    Top picks blend the implicit ALS with EASE (``ease_cfg``, default :class:`~engine.recommender.ease.EaseConfig`;
    ``ease.OFF``: the implicit ALS alone, no Gram).

    Returns a dict with ``metrics``, ``params``, ``tables`` (for saving; ``ratings`` is a Spark
    DataFrame of every rating, written by Spark), the Spark ``model`` (bias-corrected ALS),
    ``picks_model`` (implicit ALS) and ``train_ratings`` (the training split, Spark).
    """
    cfg = (cfg or ALSConfig()).check()
    picks_cfg = picks_cfg or picks.PicksConfig()
    check_picks_config(picks_cfg)
    blend = movie_neighbours.DEFAULT_BLEND if blend is None else blend
    blend = None if blend == NO_BLEND else blend  # the ALS alone: no neighbours to find
    neighbours_cfg = (neighbours_cfg or movie_neighbours.NeighbourConfig()).check()
    ease_cfg = (ease_cfg or ease.EaseConfig()).check()
    progress = with_eta(progress)  # the fractions: STAGE_SHARES' running sums
    if cfg.split_by == "time":
        progress(0.0, f"splitting ratings by time (each user's last {cfg.test_fraction:.0%} is test)")
    else:
        progress(0.0, f"splitting ratings {1 - cfg.test_fraction:.0%}/{cfg.test_fraction:.0%} (seed {cfg.split_seed})")
    release = as_spark_release(spark, data)
    if not cfg.num_blocks:  # the saved params say which blocks the fits had
        extra = 0 if extra_ratings is None else len(extra_ratings)
        n = None if release.n_ratings is None else release.n_ratings + extra
        cfg = replace(cfg, num_blocks=blocks_for(spark, n))
    all_ratings = ratings_frame(spark, release, extra_ratings, with_time=cfg.split_by == "time")
    train, test = split(all_ratings, cfg)

    # The plain-ALS comparison, the top-picks model, EASE's Gram and (once the biases are known) the movie
    # neighbours do not depend on the bias-corrected model. Up to BESIDE_UP_TO ratings they run as Spark
    # jobs beside it, from three driver threads: on a small machine an ALS fit of such data is mostly job
    # and stage overhead, gaps the other jobs' tasks fill (as the tuning's two fits at a time do; the
    # neighbours beside: a cold train 27.5-28.2 s against 28.6-29.6 s). Nothing changes: each fit is seeded,
    # its factors do not depend on the schedule, and the neighbours read the biases the model has (cached
    # before they start). Bigger data (or an unknown size) runs one step at a time: each then has the
    # machine's (or the cluster's) memory to itself.
    beside = release.n_ratings is not None and release.n_ratings <= BESIDE_UP_TO
    side = ThreadPoolExecutor(max_workers=3, thread_name_prefix="train-beside") if beside else None
    at = stage_fractions(
        beside,
        skip=(() if blend is not None else ("neighbours", "blend"))
        + (() if compare_baselines else ("baseline", "plain"))
        + (() if ease_cfg.on else ("ease",)),
    )
    neighbour_table = neighbour_df = neighbour_future = None
    try:
        plain_future = _start(side, _plain_rmse, cfg, train, test) if compare_baselines else None
        picks_future = _start(side, _timed, picks.fit, train, picks_cfg, cfg.num_blocks)
        gram_future = _start(side, _timed, ease.gram, train, ease_cfg) if ease_cfg.on else None
        progress(
            at["fit"],
            f"fitting bias-corrected ALS (rank {cfg.rank}, {cfg.max_iter} iterations)"
            + (
                f", with {'the plain-ALS comparison and ' if compare_baselines else ''}"
                f"the top-picks model (implicit ALS, rank {picks_cfg.rank}) beside it"
                if beside
                else ""
            ),
        )
        estimator, t0 = cfg.estimator(), time.perf_counter()
        baseline = estimator.fit_baseline(train)
        try:
            # The neighbours need only the biases: beside the fits, they start now.
            neighbour_future = _start(side, _neighbours, train, baseline, neighbours_cfg) if blend is not None else None
            model = estimator.fit_on_baseline(baseline)
        finally:
            baseline.release()
        fit_seconds = time.perf_counter() - t0
        metrics = {
            "test_rmse": None,
            "split_seed": cfg.split_seed,
            "split_by": cfg.split_by,
            "fit_seconds": round(fit_seconds, 2),
        }
        if blend is not None:
            progress(
                at["neighbours"], "finding each movie's most similar movies (the neighbourhood of the predicted stars)"
            )
            neighbour_df, neighbour_table, seconds = neighbour_future.result()
            metrics["neighbours_seconds"] = round(seconds, 2)
        progress(at["scoring"], "scoring the test set")
        metrics["explicit_rmse"] = round(rmse(model.transform(test)), 5)
        if compare_baselines:
            progress(at["baseline"], "bias-only baseline")
            metrics["bias_baseline_rmse"] = round(
                rmse(bias_baseline_predictions(model.mu, model.item_bias, model.user_bias, test)), 5
            )
            progress(at["plain"], "plain Spark ALS for comparison")
            metrics["plain_als_rmse"] = plain_future.result()
        progress(at["picks"], f"fitting the top-picks model (implicit ALS, rank {picks_cfg.rank})")
        picks_model, picks_seconds = picks_future.result()
        blend_future = None
        if blend is not None:
            # Scoring the test set is mostly the JVM's work, the ranking metrics below mostly the driver's
            # (Python): on small data they run beside each other (1.3 s less of a cold train, 5.7 -> 4.4 s).
            progress(
                at["blend"],
                "scoring the test set with the blend of the three"
                + (", the ranking metrics beside it" if side is not None else ""),
            )
            blend_future = _start(side, _blend_rmse, test, train, model, picks_model, neighbour_df, blend)
            if side is None:
                metrics["test_rmse"] = blend_future.result()
        else:
            metrics["test_rmse"] = metrics["explicit_rmse"]
        ease_table = None
        if gram_future is not None:
            progress(at["ease"], "EASE for top picks: the movies' Gram matrix")
            (ease_ids, ease_gram), gram_seconds = gram_future.result()
            ease_table = ease.as_table(ease_ids, ease_gram)
            metrics["ease_gram_seconds"] = round(gram_seconds, 2)
        pick_users, pick_items = picks.export_factors(picks_model)
        metrics["picks_fit_seconds"] = round(picks_seconds, 2)

        progress(at["export"], "exporting factors")
        train_counts = train.groupBy(ITEM).count().toPandas()
        train_counts = train_counts.rename(columns={"count": "n_ratings"}).astype(
            {ITEM: np.int64, "n_ratings": np.int64}
        )
        users, items = export_tables(model, train_counts)
        counts = movie_counts(release.ratings)  # the release's own ratings, as the catalogue shows them
        catalogue = movie_catalogue(release.movies, release.links, counts)
        n_ratings = int(counts["total_ratings"].sum()) + (0 if extra_ratings is None else len(extra_ratings))
        common = dict(
            mu=model.mu,
            reg_param=cfg.reg_param,
            user_bias_reg=cfg.user_bias_reg,
            user_frame=users,
            item_frame=items,
            movies=catalogue,
            pick_user_frame=pick_users,
            pick_item_frame=pick_items,
            pick_params=picks.params_of(picks_cfg),
            neighbour_frame=neighbour_table,
            blend_params=None if blend is None else asdict(blend),
            ease_frame=ease_table,
            ease_params=ease.params_of(ease_cfg) if ease_table is not None else None,
        )

        progress(at["ranking"], "ranking metrics against popularity")
        known = set(users[USER].tolist())
        sampled, n_test = ranking_users(test, known.__contains__)
        metrics.update(n_train=int(train_counts["n_ratings"].sum()), n_test=n_test)
        train_rows, test_rows = rows_of(train, sampled), rows_of(test, sampled)
        eval_index = RecommenderIndex.from_frames(**common, ratings=train_rows)
        popular = train_counts.sort_values(["n_ratings", ITEM], ascending=[False, True], kind="stable")[ITEM].to_numpy()
        ranking = evaluate_ranking(eval_index, train_rows, test_rows, cfg.ranking_k, cfg.min_ratings, popular)
        if side is not None and blend_future is not None:  # the blend was scored beside the ranking
            progress(0.98, "scoring the test set with the blend of the three")
            metrics["test_rmse"] = blend_future.result()
    finally:
        if side is not None:
            side.shutdown(wait=True, cancel_futures=True)  # a failed step: the others' jobs end before it is raised
        if neighbour_df is None and isinstance(neighbour_future, Future) and neighbour_future.done():
            if not neighbour_future.cancelled() and neighbour_future.exception() is None:
                neighbour_df = neighbour_future.result()[0]  # a later step failed: still uncache them
        if neighbour_df is not None:
            neighbour_df.unpersist()
    metrics["ranking"] = ranking
    metrics.update(ranking_keys(ranking, cfg.ranking_k))
    train.unpersist()  # still usable as "train_ratings" (Spark reads it again when asked)
    test.unpersist()
    progress(0.99, "done evaluating")
    params = {
        **asdict(cfg),
        "mu": model.mu,
        "picks": picks.params_of(picks_cfg),
        **({} if blend is None else {"blend": asdict(blend), "neighbours": asdict(neighbours_cfg)}),
        **({} if ease_table is None else {"ease": ease.params_of(ease_cfg)}),
        "dataset": {
            "name": release.name,
            "source": release.source,
            "fingerprint": release.fingerprint,
            "n_ratings": n_ratings,
        },
    }
    tables = {
        "user_factors": users,
        "item_factors": items,
        "movies": catalogue,
        "ratings": all_ratings,  # Spark: written by Spark into the model folder
        "pick_user_factors": pick_users,
        "pick_item_factors": pick_items,
    }
    if neighbour_table is not None:
        tables["neighbours"] = neighbour_table
    if ease_table is not None:
        tables["ease_gram"] = ease_table
    return {
        "metrics": metrics,
        "params": params,
        "tables": tables,
        "model": model,
        "picks_model": picks_model,
        "train_ratings": train,
    }


def train_and_save(
    spark,
    data: MovieLens,
    root,
    cfg: ALSConfig | None = None,
    progress: Progress = log_progress,
    extra_ratings: pd.DataFrame | None = None,
    cv: dict | None = None,
    make_current: bool = True,
    force_current: bool = False,
):
    """:func:`train_and_evaluate`, then save the folder and make it current.

    A model worse than the bias-only baseline (:func:`worse_than_baseline`) is saved
    but not made current unless ``force_current``: serving it would do harm. The
    returned metrics say ``current`` (True/False) and, when held back, ``not_current``
    (why); neither is written to metrics.json.
    """
    result = train_and_evaluate(spark, data, cfg, progress, extra_ratings)
    held_back = None if force_current else worse_than_baseline(result["metrics"])
    current = make_current and held_back is None
    path = save_model(
        root,
        params=result["params"],
        metrics=result["metrics"],
        tables=result["tables"],
        spark_model=result["model"].als_model,
        cv=cv,
        make_current=current,
    )
    progress(1.0, f"saved {path.name}" + (f"; not made current: {held_back}" if make_current and held_back else ""))
    metrics = {**result["metrics"], "current": current}
    if make_current and held_back:
        metrics["not_current"] = held_back
    return path, metrics
