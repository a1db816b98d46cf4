"""Statistics benchmark: the whole dataset and slices, pandas vs Spark, and DuckDB over Parquet at scale.

    python bench/bench_stats.py [--repeat 5]
    python bench/bench_stats.py --release data/synthetic/ml-synth-1m --release data/synthetic/ml-synth-25m

Without --release: the configured release, pandas (the page for small releases) vs Spark.
With --release: prepare-data's time (a fresh conversion into a temporary folder), then each
slice with DuckDB over the Parquet (the page once prepared) vs pandas on the same ratings
(typed, from the Parquet: the CSV load is left out), and whether both give the same tables.
All figures from one run on one machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movie_profile import movie_profile  # noqa: E402
from engine.data.movielens import load_movielens  # noqa: E402
from engine.data.stats import EmptySlice, Slice, compute_stats  # noqa: E402
from engine.data.stats_spark import compute_stats_spark  # noqa: E402
from engine.settings import get_settings  # noqa: E402

SLICES = {
    "everything": Slice(),
    "one genre (Comedy)": Slice(genres=("Comedy",)),
    "two genres, a decade": Slice(genres=("Comedy", "Drama"), released=(1990, 1999)),
    "ratings of 2015-2018": Slice(rated=(2015, 2018)),
    "Film-Noir of the 1940s": Slice(genres=("Film-Noir",), released=(1940, 1949)),
}


def timed(fn, repeat: int) -> float:
    """Median milliseconds of fn() over ``repeat`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def columnar_vs_pandas(location: str, repeat: int, pandas_repeat: int) -> None:
    """prepare-data, then every slice: DuckDB/arrays over the Parquet vs pandas, same answers."""
    import dataclasses
    import shutil
    import tempfile

    from engine.data.prepare import load_prepared, prepare_release
    from engine.data.stats_columnar import ColumnarRelease

    scratch = Path(tempfile.mkdtemp(prefix="bench-stats-", dir=get_settings().data_dir))
    try:
        settings = dataclasses.replace(get_settings(), movielens_data=location, data_dir=scratch)
        t0 = time.perf_counter()
        folder = prepare_release(settings)
        prepare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        release = ColumnarRelease(folder)
        open_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        release._rating_arrays()
        arrays_s = time.perf_counter() - t0
        data = load_prepared(folder)
        print(
            f"{release.name}: {len(data.ratings):,} ratings, {data.ratings['userId'].nunique():,} users, "
            f"{len(data.movies):,} movies"
        )
        print(
            f"  prepare-data {prepare_s:.1f} s; open (summaries) {open_s:.1f} s; per-rating arrays "
            f"(first slice by genre or release year) {arrays_s:.1f} s\n"
        )
        print(f"  {'slice':<28}{'ratings':>12}{'DuckDB':>12}{'pandas':>12}{'pandas/DuckDB':>15}  same tables")
        for name, part in SLICES.items():
            try:
                ours = release.stats(part)
            except EmptySlice:
                print(f"  {name:<28}{'none':>12}   (no ratings in this release)")
                continue
            ms = timed(lambda: release.stats(part), repeat)
            t0 = time.perf_counter()
            for _ in range(pandas_repeat):
                theirs = compute_stats(data, part=part)
            pandas_ms = (time.perf_counter() - t0) * 1000 / pandas_repeat
            tables = (
                "ratings_per_user",
                "ratings_per_movie",
                "rating_values",
                "genres",
                "ratings_per_year",
                "top_tags",
                "release_decades",
                "genre_years",
            )
            same = ours.counts == theirs.counts and all(
                getattr(ours, t).reset_index(drop=True).equals(getattr(theirs, t).reset_index(drop=True))
                for t in tables
            )
            if not same:  # pandas sums float32 ratings in float32: past ~8 M stars a mean can move by 1e-4
                counts_same = ours.counts == theirs.counts and all(
                    getattr(ours, t)
                    .drop(columns="mean_rating", errors="ignore")
                    .reset_index(drop=True)
                    .equals(getattr(theirs, t).drop(columns="mean_rating", errors="ignore").reset_index(drop=True))
                    for t in tables
                )
                gap = max(
                    float(
                        (
                            getattr(ours, t)["mean_rating"].astype(float).reset_index(drop=True)
                            - getattr(theirs, t)["mean_rating"].astype(float).reset_index(drop=True)
                        )
                        .abs()
                        .max()
                    )
                    for t in ("genres", "ratings_per_year", "release_decades")
                )
                verdict = f"counts {'yes' if counts_same else 'NO'}, means within {gap:.0e}"
            else:
                verdict = "yes"
            print(
                f"  {name:<28}{ours.counts['ratings']:>12,}{ms:>9.0f} ms{pandas_ms:>9.0f} ms"
                f"{pandas_ms / ms:>14.0f}x  {verdict}"
            )
        print()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument(
        "--release",
        action="append",
        metavar="PATH",
        help="a GroupLens folder or zip: DuckDB over its Parquet vs pandas (repeatable)",
    )
    parser.add_argument("--pandas-repeat", type=int, default=1, help="pandas runs per slice with --release")
    args = parser.parse_args()
    if args.release:
        for location in args.release:
            columnar_vs_pandas(location, args.repeat, args.pandas_repeat)
        return
    location = get_settings().movielens_data
    data = load_movielens(location)
    print(f"{data.describe()}\n")
    spark = tables = None
    if not args.skip_spark:
        from engine.spark import get_spark

        spark = get_spark()
        tables = (
            spark.createDataFrame(data.ratings).cache(),
            spark.createDataFrame(data.movies[["movieId", "title", "genres"]]).cache(),
            spark.createDataFrame(data.tags).cache(),
        )
    base = None
    print(f"  {'slice':<28}{'ratings':>9}{'pandas':>12}{'vs whole':>10}{'Spark':>12}{'Spark/pandas':>14}")
    for name, part in SLICES.items():
        ratings = compute_stats(data, part=part).counts["ratings"]
        ms = timed(lambda: compute_stats(data, part=part), args.repeat)
        base = base or ms
        spark_ms = (
            timed(lambda: compute_stats_spark(spark, *tables, part=part), max(1, args.repeat // 2))
            if spark
            else float("nan")
        )
        print(f"  {name:<28}{ratings:>9,}{ms:>9.1f} ms{ms / base:>9.2f}x{spark_ms:>9.0f} ms{spark_ms / ms:>13.0f}x")
    ms = timed(lambda: movie_profile(data, 858), args.repeat * 4)
    print(f"\n  movie_profile (the similar page's About panel, The Godfather): {ms:.2f} ms")


if __name__ == "__main__":
    main()
