"""Statistics benchmark: the whole dataset and slices, pandas (the app) vs Spark (large releases).

    python bench/bench_stats.py [--repeat 5]

The statistics page computes a slice with pandas on each change of the sidebar;
Spark computes the same numbers for releases pandas cannot hold. All figures from
one run on one machine; compare them as ratios.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.movielens import load_movielens  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from engine.stats import Slice, compute_stats, compute_stats_spark, movie_profile  # noqa: E402

SLICES = {"everything": Slice(),
          "one genre (Comedy)": Slice(genres=("Comedy",)),
          "two genres, a decade": Slice(genres=("Comedy", "Drama"), released=(1990, 1999)),
          "ratings of 2015-2018": Slice(rated=(2015, 2018)),
          "Film-Noir of the 1940s": Slice(genres=("Film-Noir",), released=(1940, 1949))}


def timed(fn, repeat: int) -> float:
    """Median milliseconds of fn() over ``repeat`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()
    location = get_settings().movielens_data
    data = load_movielens(location)
    print(f"{data.describe()}\n")
    spark = tables = None
    if not args.skip_spark:
        from engine.spark import get_spark
        spark = get_spark()
        tables = (spark.createDataFrame(data.ratings).cache(),
                  spark.createDataFrame(data.movies[["movieId", "title", "genres"]]).cache(),
                  spark.createDataFrame(data.tags).cache())
    base = None
    print(f"  {'slice':<28}{'ratings':>9}{'pandas':>12}{'vs whole':>10}{'Spark':>12}{'Spark/pandas':>14}")
    for name, part in SLICES.items():
        ratings = compute_stats(data, part=part).counts["ratings"]
        ms = timed(lambda: compute_stats(data, part=part), args.repeat)
        base = base or ms
        spark_ms = timed(lambda: compute_stats_spark(spark, *tables, part=part), max(1, args.repeat // 2)) \
            if spark else float("nan")
        print(f"  {name:<28}{ratings:>9,}{ms:>9.1f} ms{ms / base:>9.2f}x{spark_ms:>9.0f} ms{spark_ms / ms:>13.0f}x")
    ms = timed(lambda: movie_profile(data, 858), args.repeat * 4)
    print(f"\n  movie_profile (the similar page's About panel, The Godfather): {ms:.2f} ms")


if __name__ == "__main__":
    main()
