"""Serving benchmark: in-process index vs Spark, a generated ml-32m-sized model, LSH recall.

    python bench/bench_serving.py [--spark-queries 20] [--skip-large] [--skip-small] [--large-ratings N]

The large case saves (once, under data/bench/) a model folder with 32 M long-tailed ratings
(bench/make_synthetic.py's shape) and random factors, then loads it in a fresh process through
``RecommenderIndex.load``: load seconds, index memory (RSS and the arrays), query p50/p95.

All figures from one run on one machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.recommender.lsh import LSHIndex, recall_at_k  # noqa: E402
from engine.recommender.model_store import current_model_dir  # noqa: E402
from engine.recommender.model_tables import read_serving_tables  # noqa: E402
from engine.recommender.neighbours import DEFAULT_BLEND, NeighbourConfig  # noqa: E402
from engine.recommender.serving import RecommenderIndex  # noqa: E402
from engine.settings import get_settings  # noqa: E402


def latency(fn, args_list) -> tuple[float, float]:
    """(p50, p95) in milliseconds of fn(*args) over args_list, after one warm-up call."""
    fn(*args_list[0])
    times = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def sample_queries(index, seed: int = 1):
    """Seeded queries for :func:`latency`: 200 users, 200 movies with >= 10 ratings, and 100 new people's
    20 ratings each of such movies (the argument tuples of recommend, similar and recommend_new_user)."""
    rng = np.random.default_rng(seed)
    users = [(int(u),) for u in rng.choice(index.user_ids, 200)]
    popular = index.item_ids[index.item_support >= 10]
    items = [(int(m),) for m in rng.choice(popular, 200)]
    folds = [
        ([(int(m), float(rng.integers(1, 11)) / 2) for m in rng.choice(popular, 20, replace=False)],)
        for _ in range(100)
    ]
    return users, items, folds


def row(name, p50, p95, note=""):
    print(f"  {name:<48}p50 {p50:9.3f} ms   p95 {p95:9.3f} ms  {note}")


def small(args) -> None:
    folder = current_model_dir(get_settings().model_dir)
    tables = read_serving_tables(folder)
    index = RecommenderIndex.from_frames(**tables)
    rng = np.random.default_rng(0)
    users = [int(u) for u in rng.choice(index.user_ids, 200)]
    movies = [int(m) for m in rng.choice(index.item_ids[index.item_support >= 10], 200)]
    history = {u: index.user_history(u) for u in users[:50]}
    folds = [([(int(m), float(r)) for m, r in zip(h.movieId[:20], h.rating[:20])],) for h in history.values()]
    print(
        f"== ml-latest-small, model {folder.name}: {len(index.user_ids)} users, "
        f"{len(index.item_ids)} movies, rank {index.rank}"
    )
    rec = latency(lambda u: index.recommend(u, 10), [(u,) for u in users])
    sim = latency(lambda m: index.similar(m, 10), [(m,) for m in movies])
    fold = latency(lambda r: index.recommend_new_user(r, 10), folds)
    row("recommend (top 10, explanations)", *rec)
    row("similar (top 10, exact cosine)", *sim)
    row("fold-in new user (20 ratings) + top 10", *fold)
    if index.has_picks:
        row(
            "top picks (implicit ALS, top 10, explanations)",
            *latency(lambda u: index.recommend(u, 10, order="picks"), [(u,) for u in users]),
        )
        row(
            "top picks fold-in new user (20 ratings)",
            *latency(lambda r: index.recommend_new_user(r, 10, order="picks"), folds),
        )
    groups = [
        ({"a": users[k], "b": users[k + 1], "c": users[k + 2], "me": folds[k % len(folds)][0]},)
        for k in range(0, 150, 3)
    ]
    row("movie night (3 users + 1 folded in, top 10)", *latency(lambda g: index.recommend_group(g, 10), groups))
    row(
        "similar to 3 movies at once (top 10)",
        *latency(lambda k: index.similar(movies[k], 10, also=movies[k + 1 : k + 3]), [(k,) for k in range(0, 150, 3)]),
    )
    row(
        "most-watched to rate (9, 20 rated left out)",
        *latency(lambda r: index.popular_to_rate([m for m, _ in r], 9), folds),
    )
    from engine.people.rating_files import read_ratings_file

    movies_meta = index.movies
    imdb = "Const,Your Rating\n" + "".join(f"tt{i},8\n" for i in movies_meta["imdbId"].dropna()[:1000])
    named = "Date,Name,Year,Letterboxd URI,Rating\n" + "".join(
        f'd,"{t.rsplit(" (", 1)[0].replace(chr(34), chr(34) * 2)}",{y},u,4\n'
        for t, y in zip(index.readable_titles.iloc[:1000], movies_meta["year"].iloc[:1000])
        if pd.notna(y)
    )
    row(
        "import an IMDb export, 1,000 ratings",
        *latency(lambda t: read_ratings_file(t, "imdb.csv", movies_meta), [(imdb,)] * 10),
    )
    row(
        "import a Letterboxd export, 1,000 ratings",
        *latency(lambda t: read_ratings_file(t, "ratings.csv", movies_meta), [(named,)] * 10),
        "(title + year matching)",
    )
    from engine.recommender.mood import mood_recommendations

    emotions = [("happy",), ("sad",), ("fear",), ("surprise",)] * 25
    row("mood list (Bayesian average)", *latency(lambda e: mood_recommendations(e, index.movies, 10), emotions))
    row(
        "mood list for user 575 (top picks)",
        *latency(lambda e: mood_recommendations(e, index.movies, 10, index=index, user_id=575), emotions),
    )

    from pyspark.ml.recommendation import ALSModel

    from engine.spark import get_spark

    spark = get_spark()
    als = ALSModel.load(str(folder / "spark_model"))
    q = args.spark_queries
    sp_rec = latency(
        lambda u: als.recommendForUserSubset(spark.createDataFrame([(u,)], ["userId"]), 10).collect(),
        [(u,) for u in users[:q]],
    )
    row(f"Spark recommendForUserSubset ({q} users)", *sp_rec, f"= {sp_rec[1] / rec[1]:,.0f} x index p95")
    t0 = time.perf_counter()
    lsh = LSHIndex(spark, tables["item_frame"], tables["movies"])
    build = time.perf_counter() - t0
    sp_sim = latency(lambda m: lsh.similar(m, 10), [(m,) for m in movies[:q]])
    row(f"Spark LSH approxNearestNeighbors ({q} movies)", *sp_sim, f"= {sp_sim[1] / sim[1]:,.0f} x index p95")
    print(f"  (LSH model fit: {build:.1f} s)")

    print("\n== LSH recall@5 against exact cosine (50 movies with >= 10 ratings)")
    probe = movies[:50]
    exact = {m: index.similar(m, 5)["movieId"].tolist() for m in probe}
    for bucket, tables_n in ((0.5, 2), (0.5, 4), (1.0, 4), (1.0, 8), (2.0, 8)):
        l = LSHIndex(spark, tables["item_frame"], tables["movies"], bucket_length=bucket, num_hash_tables=tables_n)
        t0 = time.perf_counter()
        approx = {m: l.similar(m, 5)["movieId"].tolist() for m in probe}
        ms = (time.perf_counter() - t0) / len(probe) * 1000
        print(
            f"  bucketLength {bucket:<4} numHashTables {tables_n:<2}  recall@5 {recall_at_k(exact, approx):.3f}"
            f"   {ms:7.1f} ms per query"
        )


LARGE_DIR = Path(__file__).resolve().parent.parent / "data" / "bench" / "serving-32m"


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_large_model(root: Path, n_ratings: int, n_items: int, rank: int) -> Path:
    """A saved model folder the size of ml-32m: :func:`make_synthetic.generate`'s long-tailed ratings
    (their movies spread over an ``n_items`` catalogue), random factors. Written once, reused."""
    from make_synthetic import generate

    from engine.recommender.model_store import current_model_dir, save_model

    try:
        return current_model_dir(root)
    except Exception:  # none yet
        pass
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    made = generate(n_ratings)
    spread = np.sort(rng.choice(np.arange(1, n_items + 1), len(made["movies"]), replace=False))
    ratings = made["ratings"][["userId", "movieId", "rating"]]
    ratings = ratings.assign(movieId=spread[ratings["movieId"].to_numpy() - 1].astype(np.int32))
    del made
    ratings = ratings.sample(frac=1.0, random_state=2, ignore_index=True)  # as Spark exports: any order
    n_users = int(ratings["userId"].max())
    fcols = [f"f{i}" for i in range(rank)]
    users = pd.DataFrame(rng.normal(0, 0.3, (n_users, rank)).astype(np.float32), columns=fcols)
    users.insert(0, "userId", np.arange(1, n_users + 1))
    users.insert(1, "user_bias", rng.normal(0, 0.3, n_users))
    counts = np.bincount(ratings["movieId"].to_numpy(), minlength=n_items + 1)[1:]
    sums = np.bincount(ratings["movieId"].to_numpy(), ratings["rating"].to_numpy(), minlength=n_items + 1)[1:]
    items = pd.DataFrame(rng.normal(0, 0.3, (n_items, rank)).astype(np.float32), columns=fcols)
    items.insert(0, "movieId", np.arange(1, n_items + 1))
    items.insert(1, "item_bias", rng.normal(0, 0.3, n_items))
    items.insert(2, "n_ratings", counts.astype(np.int64))
    genres = np.array(
        [
            "Drama",
            "Comedy",
            "Action",
            "Thriller",
            "Romance",
            "Horror",
            "Sci-Fi",
            "Drama|Romance",
            "Action|Sci-Fi|Thriller",
            "Comedy|Drama",
        ]
    )
    years = rng.integers(1920, 2024, n_items)
    movies = pd.DataFrame(
        {
            "movieId": items.movieId,
            "title": [f"Movie {i} ({y})" for i, y in zip(items.movieId, years)],
            "genres": genres[rng.integers(0, len(genres), n_items)],
            "year": years.astype(float),
            "imdbId": [f"{9_000_000 + i:07d}" for i in items.movieId],
            "tmdbId": items.movieId + 900_000.0,
            "total_ratings": counts,
            "mean_rating": np.round(sums / np.maximum(counts, 1), 3),
        }
    )
    pick_rank = 32  # engine.recommender.picks.PicksConfig's default
    pcols = [f"f{i}" for i in range(pick_rank)]
    pick_users = pd.DataFrame(rng.gamma(1.0, 0.1, (n_users, pick_rank)).astype(np.float32), columns=pcols)
    pick_users.insert(0, "userId", users.userId)
    pick_items = pd.DataFrame(rng.gamma(1.0, 0.1, (n_items, pick_rank)).astype(np.float32), columns=pcols)
    pick_items.insert(0, "movieId", items.movieId)
    # The stars' movie neighbours as training keeps them: 50 per movie with >= 10 ratings, among those movies.
    found = NeighbourConfig()
    supported = items.movieId.to_numpy()[counts >= found.min_ratings]
    neighbours = pd.DataFrame(
        {
            "movieId": np.repeat(supported, found.keep),
            "neighbourId": rng.choice(supported, len(supported) * found.keep),
            "similarity": rng.uniform(0.01, 0.3, len(supported) * found.keep),
        }
    ).drop_duplicates(["movieId", "neighbourId"])
    params = {
        "rank": rank,
        "mu": 3.5,
        "reg_param": 0.1,
        "user_bias_reg": 5.0,
        "picks": {"alpha": 0.5, "reg_param": 0.1},
        "blend": asdict(DEFAULT_BLEND),
        "neighbours": asdict(found),
        "dataset": {"name": "bench-32m", "n_ratings": len(ratings)},
    }
    folder = save_model(
        root,
        params=params,
        metrics={},
        tables={
            "user_factors": users,
            "item_factors": items,
            "movies": movies,
            "ratings": ratings,
            "pick_user_factors": pick_users,
            "pick_item_factors": pick_items,
            "neighbours": neighbours,
        },
    )
    print(f"  (model folder written in {time.perf_counter() - t0:.0f} s: {folder})")
    return folder


def large(n_ratings: int) -> None:
    """Generate (once) and save an ml-32m-sized model, then load and query it in a fresh process."""
    n_items, rank = 87_000, 50
    print(f"\n== a saved model the size of ml-32m: {n_ratings:,} ratings, {n_items:,} movies, rank {rank}")
    folder = make_large_model(LARGE_DIR / f"{n_ratings // 1_000_000}m", n_ratings, n_items, rank)
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--serve", str(folder)], check=True)  # a clean heap to measure


def serve_large(folder: Path) -> None:
    """Load ``folder`` through :meth:`RecommenderIndex.load` (the app's path) and time its queries."""
    import resource

    before = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    index = RecommenderIndex.load(folder)
    load, cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    after = rss_mib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rated = index.rated
    arrays = {
        "factors (explicit, unit, implicit)": sum(
            a.nbytes
            for a in (
                index.user_factors,
                index.item_factors,
                index._unit_items,
                index.user_bias,
                index.item_bias,
                index.item_support,
                index.pick_user_factors,
                index.pick_item_factors,
            )
        ),
        "rated movies (CSR)": rated.nbytes,
        "movie neighbours": 0
        if index.neighbours is None
        else sum(a.nbytes for a in (index.neighbours.indptr, index.neighbours.targets, index.neighbours.similarity)),
        "top picks' EASE (B and its transpose)": 0 if index.ease is None else index.ease.nbytes,
        "movies table": int(index.movies.memory_usage(deep=True).sum()),
    }
    frames = [k for k, v in vars(index).items() if isinstance(v, pd.DataFrame) and len(v) > 1_000_000]
    n_users, n_ratings = len(index.user_ids), int(rated.indptr[-1])
    print(
        f"  {n_users:,} users, {len(index.item_ids):,} movies, {n_ratings:,} ratings "
        f"({np.diff(rated.indptr).max():,} by the most active user)"
    )
    print(
        f"  load {load:.1f} s ({cpu:.1f} s of CPU); index memory: RSS +{after - before:,.0f} MiB (peak during load "
        f"{peak - before:,.0f} MiB over the start), arrays "
        + ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in arrays.items())
        + f"; frames of > 1 M rows kept: {frames or 'none'}"
    )
    q_users, q_items, q_fold = sample_queries(index)
    row("recommend (top 10, explanations)", *latency(lambda u: index.recommend(u, 10), q_users))
    row("similar (top 10, exact cosine)", *latency(lambda m: index.similar(m, 10), q_items))
    row("fold-in new user (20 ratings) + top 10", *latency(lambda r: index.recommend_new_user(r, 10), q_fold))
    row("top picks (top 10, explanations)", *latency(lambda u: index.recommend(u, 10, order="picks"), q_users))
    row(
        "top picks fold-in new user (20 ratings)",
        *latency(lambda r: index.recommend_new_user(r, 10, order="picks"), q_fold),
    )
    row(
        "history + profile (the Recommendations page)",
        *latency(lambda u: (index.user_history(u, 15), index.user_profile(u)), q_users),
    )
    # The same queries with the scans in float64 (as before 2026-12-02): the float32 scans' gain, as a
    # ratio of two figures of this run.
    f32 = {
        "recommend": latency(lambda u: index.recommend(u, 10), q_users),
        "top picks": latency(lambda u: index.recommend(u, 10, order="picks"), q_users),
        "similar": latency(lambda m: index.similar(m, 10), q_items),
    }
    index._scan_items, index._scan_unit, index._scan_picks = (
        index.item_factors,
        index._unit_items,
        index.pick_item_factors,
    )
    f64 = {
        "recommend": latency(lambda u: index.recommend(u, 10), q_users),
        "top picks": latency(lambda u: index.recommend(u, 10, order="picks"), q_users),
        "similar": latency(lambda m: index.similar(m, 10), q_items),
    }
    for name in f32:
        print(
            f"  {name}: float32 scans p50 {f32[name][0]:.2f} ms / p95 {f32[name][1]:.2f} ms, float64 scans "
            f"p50 {f64[name][0]:.2f} / p95 {f64[name][1]:.2f} ms (p50 {f64[name][0] / f32[name][0]:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark-queries", type=int, default=20)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-small", action="store_true", help="only the ml-32m-sized model")
    parser.add_argument("--large-ratings", type=int, default=32_000_000)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child process of large()
    args = parser.parse_args()
    if args.serve:
        return serve_large(args.serve)
    if not args.skip_small:
        small(args)
    if not args.skip_large:
        large(args.large_ratings)


if __name__ == "__main__":
    main()
