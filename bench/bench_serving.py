"""Serving benchmark: in-process index vs Spark, a generated ml-32m-sized catalogue, LSH recall.

    python bench/bench_serving.py [--spark-queries 20] [--skip-large]

All figures from one run on one machine; compare them as ratios.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.lsh import LSHIndex, recall_at_k  # noqa: E402
from engine.model_store import current_model_dir, read_serving_tables  # noqa: E402
from engine.serving import RecommenderIndex  # noqa: E402
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
    print(f"== ml-latest-small, model {folder.name}: {len(index.user_ids)} users, "
          f"{len(index.item_ids)} movies, rank {index.rank}")
    rec = latency(lambda u: index.recommend(u, 10), [(u,) for u in users])
    sim = latency(lambda m: index.similar(m, 10), [(m,) for m in movies])
    fold = latency(lambda r: index.recommend_new_user(r, 10), folds)
    row("recommend (top 10, explanations)", *rec)
    row("similar (top 10, exact cosine)", *sim)
    row("fold-in new user (20 ratings) + top 10", *fold)
    if index.has_picks:
        row("top picks (implicit ALS, top 10, explanations)",
            *latency(lambda u: index.recommend(u, 10, order="picks"), [(u,) for u in users]))
        row("top picks fold-in new user (20 ratings)",
            *latency(lambda r: index.recommend_new_user(r, 10, order="picks"), folds))
    groups = [({"a": users[k], "b": users[k + 1], "c": users[k + 2], "me": folds[k % len(folds)][0]},)
              for k in range(0, 150, 3)]
    row("movie night (3 users + 1 folded in, top 10)", *latency(lambda g: index.recommend_group(g, 10), groups))
    row("similar to 3 movies at once (top 10)", *latency(
        lambda k: index.similar(movies[k], 10, also=movies[k + 1:k + 3]), [(k,) for k in range(0, 150, 3)]))
    row("most-watched to rate (9, 20 rated left out)", *latency(
        lambda r: index.popular_to_rate([m for m, _ in r], 9), folds))
    from engine.rating_files import read_ratings_file
    movies_meta = index.movies
    imdb = "Const,Your Rating\n" + "".join(f"tt{i},8\n" for i in movies_meta["imdbId"].dropna()[:1000])
    named = "Date,Name,Year,Letterboxd URI,Rating\n" + "".join(
        f'd,"{t.rsplit(" (", 1)[0].replace(chr(34), chr(34) * 2)}",{y},u,4\n'
        for t, y in zip(index.readable_titles.iloc[:1000], movies_meta["year"].iloc[:1000]) if pd.notna(y))
    row("import an IMDb export, 1,000 ratings", *latency(lambda t: read_ratings_file(t, "imdb.csv", movies_meta),
                                                           [(imdb,)] * 10))
    row("import a Letterboxd export, 1,000 ratings", *latency(
        lambda t: read_ratings_file(t, "ratings.csv", movies_meta), [(named,)] * 10), "(title + year matching)")
    from engine.mood import mood_recommendations
    emotions = [("happy",), ("sad",), ("fear",), ("surprise",)] * 25
    row("mood list (Bayesian average)", *latency(
        lambda e: mood_recommendations(e, index.movies, 10), emotions))
    row("mood list for user 575 (top picks)", *latency(
        lambda e: mood_recommendations(e, index.movies, 10, index=index, user_id=575), emotions))

    from engine.spark import get_spark
    from pyspark.ml.recommendation import ALSModel
    spark = get_spark()
    als = ALSModel.load(str(folder / "spark_model"))
    q = args.spark_queries
    sp_rec = latency(lambda u: als.recommendForUserSubset(
        spark.createDataFrame([(u,)], ["userId"]), 10).collect(), [(u,) for u in users[:q]])
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
        l = LSHIndex(spark, tables["item_frame"], tables["movies"], bucket_length=bucket,
                     num_hash_tables=tables_n)
        t0 = time.perf_counter()
        approx = {m: l.similar(m, 5)["movieId"].tolist() for m in probe}
        ms = (time.perf_counter() - t0) / len(probe) * 1000
        print(f"  bucketLength {bucket:<4} numHashTables {tables_n:<2}  recall@5 {recall_at_k(exact, approx):.3f}"
              f"   {ms:7.1f} ms per query")


def large() -> None:
    n_users, n_items, rank = 200_000, 87_000, 50
    rng = np.random.default_rng(1)
    print(f"\n== generated catalogue the size of ml-32m: {n_users:,} users, {n_items:,} movies, rank {rank}")
    t0 = time.perf_counter()
    fcols = [f"f{i}" for i in range(rank)]
    users = pd.DataFrame(rng.normal(0, 0.3, (n_users, rank)).astype(np.float32), columns=fcols)
    users.insert(0, "userId", np.arange(1, n_users + 1))
    users.insert(1, "user_bias", rng.normal(0, 0.3, n_users))
    items = pd.DataFrame(rng.normal(0, 0.3, (n_items, rank)).astype(np.float32), columns=fcols)
    items.insert(0, "movieId", np.arange(1, n_items + 1))
    items.insert(1, "item_bias", rng.normal(0, 0.3, n_items))
    items.insert(2, "n_ratings", rng.zipf(1.6, n_items).clip(1, 100_000))
    genres = np.array(["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "Sci-Fi"])
    movies = pd.DataFrame({"movieId": items.movieId, "title": [f"Movie {i}" for i in items.movieId],
                           "genres": genres[rng.integers(0, 7, n_items)], "year": 2000})
    per_user = 20
    ratings = pd.DataFrame({"userId": np.repeat(users.userId.to_numpy(), per_user),
                            "movieId": rng.integers(1, n_items + 1, n_users * per_user),
                            "rating": rng.integers(1, 11, n_users * per_user) / 2})
    ratings = ratings.drop_duplicates(["userId", "movieId"])
    pick_rank = 32  # engine.picks.PicksConfig's default
    pcols = [f"f{i}" for i in range(pick_rank)]
    pick_users = pd.DataFrame(rng.gamma(1.0, 0.1, (n_users, pick_rank)).astype(np.float32), columns=pcols)
    pick_users.insert(0, "userId", users.userId)
    pick_items = pd.DataFrame(rng.gamma(1.0, 0.1, (n_items, pick_rank)).astype(np.float32), columns=pcols)
    pick_items.insert(0, "movieId", items.movieId)
    index = RecommenderIndex.from_frames(mu=3.5, reg_param=0.1, user_bias_reg=5, user_frame=users,
                                         item_frame=items, movies=movies, ratings=ratings,
                                         pick_user_frame=pick_users, pick_item_frame=pick_items,
                                         pick_params={"alpha": 0.5, "reg_param": 0.1})
    build = time.perf_counter() - t0
    arrays = sum(a.nbytes for a in (index.user_factors, index.item_factors, index._unit_items,
                                    index.user_bias, index.item_bias, index.item_support,
                                    index.pick_user_factors, index.pick_item_factors))
    frames = index.movies.memory_usage(deep=True).sum() + index.ratings.memory_usage(deep=True).sum()
    print(f"  index built in {build:.1f} s; memory: factor arrays {arrays / 2**20:,.0f} MiB, "
          f"tables {frames / 2**20:,.0f} MiB ({len(ratings):,} ratings)")
    q_users = [(int(u),) for u in rng.integers(1, n_users + 1, 200)]
    q_items = [(int(m),) for m in rng.integers(1, n_items + 1, 200)]
    q_fold = [([(int(m), 4.0) for m in rng.choice(n_items, 20, replace=False) + 1],) for _ in range(50)]
    row("recommend (top 10, explanations)", *latency(lambda u: index.recommend(u, 10), q_users))
    row("similar (top 10, exact cosine)", *latency(lambda m: index.similar(m, 10, min_ratings=0), q_items))
    row("fold-in new user (20 ratings) + top 10", *latency(lambda r: index.recommend_new_user(r, 10), q_fold))
    row("top picks (top 10, explanations)",
        *latency(lambda u: index.recommend(u, 10, order="picks"), q_users))
    row("top picks fold-in new user (20 ratings)",
        *latency(lambda r: index.recommend_new_user(r, 10, order="picks"), q_fold))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark-queries", type=int, default=20)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    small(args)
    if not args.skip_large:
        large()


if __name__ == "__main__":
    main()
