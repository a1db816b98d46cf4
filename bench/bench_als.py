"""ALS benchmark on ml-latest-small, one seeded split: accuracy, ranking, fit and grid times.

    python bench/bench_als.py [--folds 5] [--quick] [--source release|pandas]

Prints test RMSE (default model, plain Spark ALS, bias-only baseline), ranking
metrics against popularity, the time of one default fit, and the time of the full
k-fold grid (27 points by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movielens import load_movielens  # noqa: E402
from engine.data.prepare import prepare_release  # noqa: E402
from engine.data.spark_release import open_release  # noqa: E402
from engine.recommender.training import ALSConfig, train_and_evaluate  # noqa: E402
from engine.recommender.tuning import DEFAULT_GRID, tune
from engine.settings import get_settings  # noqa: E402
from engine.spark import get_spark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the grid search")
    parser.add_argument("--grid-only", action="store_true", help="only the grid search")
    parser.add_argument("--out", help="also write the figures as JSON here")
    parser.add_argument(
        "--beside-runs",
        type=int,
        default=2,
        help="then time train + evaluate this many times each way, alternating: the comparison and "
        "top-picks fits beside the main fit (the default up to BESIDE_UP_TO ratings), and one at a time",
    )
    parser.add_argument(
        "--source",
        choices=("release", "pandas"),
        default="release",
        help="release: the prepared Parquet copy, as `python -m engine train` and the app read it (default); "
        "pandas: loaded in pandas and sent from the driver, as the tests do (a local relation holding every "
        "rating in its query plan: each Spark query over it takes longer to plan)",
    )
    args = parser.parse_args()

    settings = get_settings()
    if args.source == "pandas":
        data = load_movielens(settings.movielens_data)
        spark = get_spark(settings)
    else:
        prepare_release(settings, lambda message: None)
        spark = get_spark(settings)
        data = open_release(spark, settings)
    print(f"dataset: {data.describe()} ({args.source})")
    print(f"spark: {spark.sparkContext.master}, {spark.sparkContext.defaultParallelism} cores")

    quiet = lambda f, m: None  # noqa: E731
    figures = {}
    if not args.grid_only:
        figures = report_model(spark, data, quiet)
        if args.beside_runs:
            figures["beside"] = compare_beside(spark, data, quiet, args.beside_runs)
    if not args.quick:
        points = len(DEFAULT_GRID["rank"]) * len(DEFAULT_GRID["maxIter"]) * len(DEFAULT_GRID["regParam"])
        print(f"\n== {args.folds}-fold cross-validation over {points} grid points {DEFAULT_GRID}")
        t_grid = time.perf_counter()

        def each_fit(fraction, message):
            print(f"    [{time.perf_counter() - t_grid:7.1f} s] {message}", flush=True)

        cv = tune(spark, data, DEFAULT_GRID, args.folds, progress=each_fit)
        print(f"  {cv['fits']} fits in {cv['seconds']:.0f} s ({cv['seconds'] / cv['fits']:.1f} s per fit)")
        for row in cv["table"][:5]:
            print(
                f"  rank {row['rank']:>3} maxIter {row['maxIter']:>3} regParam {row['regParam']:<5} "
                f"CV RMSE {row['rmse']:.4f}"
            )
        figures["cv"] = cv
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


def report_model(spark, data, quiet) -> dict:
    """Fit and evaluate the default model; print RMSE, ranking and time."""
    t0 = time.perf_counter()
    result = train_and_evaluate(spark, data, ALSConfig(), progress=quiet)
    total = time.perf_counter() - t0
    m = result["metrics"]
    r = m["ranking"]
    print("\n== rating prediction (test RMSE, seeded 80/20 split, seed %d)" % m["split_seed"])
    print(f"  bias-corrected ALS (default) {m['test_rmse']:.4f}")
    print(f"  plain Spark ALS              {m['plain_als_rmse']:.4f}")
    print(f"  bias-only baseline           {m['bias_baseline_rmse']:.4f}")
    print(f"\n== top-10 ranking ({r['model']['users']} test users; relevant = rated >= 4)")
    print(f"  {'ranker':<34}{'P@10':>8}{'R@10':>8}{'NDCG@10':>9}{'MAP@10':>8}")
    for key, label in (
        ("picks", "top picks (implicit ALS)"),
        ("picks_filtered", f"top picks, >= {r['min_ratings']} ratings"),
        ("model", f"predicted rating, >= {r['min_ratings']} ratings"),
        ("model_unfiltered", "predicted rating, no filter"),
        ("popularity", "most popular"),
    ):
        x = r[key]
        print(
            f"  {label:<34}{x['precision_at_k']:>8.4f}{x['recall_at_k']:>8.4f}"
            f"{x['ndcg_at_k']:>9.4f}{x['map_at_k']:>8.4f}"
        )
    print(f"\n== time\n  one default fit (rank 16, 20 iterations): {m['fit_seconds']:.1f} s")
    print(f"  top-picks fit (implicit ALS, rank 32):     {m['picks_fit_seconds']:.1f} s")
    print(f"  train + full evaluation incl. baselines:  {total:.1f} s")
    return {"metrics": m, "train_and_evaluate_seconds": round(total, 1)}


def compare_beside(spark, data, quiet, runs: int) -> dict:
    """Seconds of a default train + evaluate with the side fits beside the main fit and one at a time,
    alternating in this process (after report_model's run, so both are warm); the figures must agree."""
    from engine.recommender import training

    seconds = {"beside": [], "one at a time": []}
    metrics = {}
    default = training.BESIDE_UP_TO
    try:
        for _ in range(runs):
            for way, limit in (("one at a time", 0), ("beside", default)):
                training.BESIDE_UP_TO = limit
                t0 = time.perf_counter()
                m = train_and_evaluate(spark, data, ALSConfig(), progress=quiet)["metrics"]
                seconds[way].append(round(time.perf_counter() - t0, 1))
                metrics[way] = {k: v for k, v in m.items() if not k.endswith("seconds")}
    finally:
        training.BESIDE_UP_TO = default
    same = metrics["beside"] == metrics["one at a time"]
    best = {way: min(s) for way, s in seconds.items()}
    print("\n== train + evaluate, the comparison and top-picks fits beside the main fit or one at a time")
    for way, s in seconds.items():
        print(f"  {way:<14} {', '.join(f'{x:.1f}' for x in s)} s")
    print(f"  ratio (best of each): {best['one at a time'] / best['beside']:.2f}x; same figures: {same}")
    return {"seconds": seconds, "same_figures": same}


if __name__ == "__main__":
    main()
