"""Tuning and training speed: k-fold grid search and one default train + evaluate, this tree
against an older checkout, each in its own fresh Spark process on the same machine, in one run.

    python bench/bench_tune.py                                   # the seed's 64-point grid x 5 folds
    python bench/bench_tune.py --before /path/to/old/checkout --ranks 10,20 --iters 10 --regs 0.1,0.5 --folds 3
    python bench/bench_tune.py --train --no-tune                 # only the default train + evaluate

Prints, per tree: fits, seconds, seconds per fit, the best grid point and its CV RMSE (and the
default model's test RMSE and seconds with ``--train``), then before/after ratios. ``--before``
is any checkout of this project (e.g. ``git worktree add /tmp/before <commit>``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: What each child process runs (with PYTHONPATH at the tree under test): one JSON line out.
CHILD = r"""
import json, os, sys, time
from engine.data.movielens import load_movielens
from engine.settings import get_settings
from engine.spark import get_spark
from engine.recommender.training import ALSConfig, train_and_evaluate
from engine.recommender.tuning import tune
args = json.loads(sys.argv[1])
settings = get_settings()
if args.get("source") == "pandas":  # the release in pandas, sent to Spark from the driver (as tests do)
    data = load_movielens(settings.movielens_data)
else:  # as `python -m engine tune` and the app read it: the prepared Parquet copy
    from engine.data.prepare import prepare_release
    prepare_release(settings, lambda message: None)
t = time.perf_counter()
spark = get_spark(settings)
if args.get("source") != "pandas":
    from engine.data.spark_release import open_release
    data = open_release(spark, settings)
out = {"spark_start_s": round(time.perf_counter() - t, 1), "cores": spark.sparkContext.defaultParallelism}
jvm = spark.sparkContext._gateway.proc.pid


def cpu():
    # CPU seconds of this Python and its JVM: unlike wall time, barely moved by other users' load
    with open(f"/proc/{jvm}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return os.times().user + os.times().system + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


quiet = lambda f, m: None
if args["train"]:
    t, c = time.perf_counter(), cpu()
    m = train_and_evaluate(spark, data, ALSConfig(), quiet)["metrics"]
    out.update(train_s=round(time.perf_counter() - t, 1), train_cpu_s=round(cpu() - c, 1),
               test_rmse=m["test_rmse"], picks_ndcg_at_10=m.get("picks_ndcg_at_10"))
if args["grid"]:
    t, c = time.perf_counter(), cpu()
    r = tune(spark, data, args["grid"], args["folds"], progress=quiet, **({"parallelism": args["parallelism"]} if args.get("parallelism") else {}))
    out.update(tune_s=round(time.perf_counter() - t, 1), tune_cpu_s=round(cpu() - c, 1), fits=r["fits"],
               best=r["best"], best_rmse=r["best_rmse"], table=r["table"])
print("RESULT " + json.dumps(out))
"""


def run_tree(tree: Path, args: dict) -> dict:
    """Run the child in a fresh Python (and JVM) with ``tree`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], cwd=tree, env=env, capture_output=True, text=True
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"{tree}: the run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ranks", default="10,15,20,25")
    parser.add_argument("--iters", default="1,5,10,15")
    parser.add_argument("--regs", default="0.01,0.5,1,1.5")
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--train", action="store_true", help="also time one default train + evaluate")
    parser.add_argument("--no-tune", action="store_true", help="skip the grid search")
    parser.add_argument("--out", help="also write the figures as JSON here")
    parser.add_argument("--parallelism", type=int, help="fits at once (tune's default when not given)")
    parser.add_argument(
        "--source",
        choices=("release", "pandas"),
        default="release",
        help="release: the prepared Parquet copy, as `python -m engine tune` and the app read it (default); "
        "pandas: the release loaded in pandas and sent from the driver, as the tests do (a Spark local "
        "relation that holds every rating in its query plan, slower to plan)",
    )
    a = parser.parse_args()
    grid = (
        None
        if a.no_tune
        else {
            "rank": [int(x) for x in a.ranks.split(",")],
            "maxIter": [int(x) for x in a.iters.split(",")],
            "regParam": [float(x) for x in a.regs.split(",")],
        }
    )
    job = {"grid": grid, "folds": a.folds, "train": a.train, "source": a.source, "parallelism": a.parallelism}
    trees = {"after": REPO} if a.before is None else {"before": a.before.resolve(), "after": REPO}
    results = {}
    for name, tree in trees.items():
        print(f"running {name} ({tree})…", flush=True)
        results[name] = run_tree(tree, job)
    print(f"\nspark {results['after']['cores']} cores; grid {grid}, {a.folds} folds; ratings from {a.source}")
    print("(CPU s: of the Python and its JVM, the figure that other users' load barely moves)")
    print(
        f"{'tree':<8}{'fits':>6}{'seconds':>9}{'s/fit':>7}{'CPU s':>8}  best point (CV RMSE)"
        f"{'':>28}{'train+eval s':>13}{'CPU s':>7}{'test RMSE':>10}"
    )
    for name, r in results.items():
        tune_cols = (
            f"{r['fits']:>6}{r['tune_s']:>9.1f}{r['tune_s'] / r['fits']:>7.2f}{r['tune_cpu_s']:>8.1f}  "
            f"{json.dumps(r['best']):<48}({r['best_rmse']:.4f})"
            if grid
            else f"{'':>80}"
        )
        train_cols = f"{r['train_s']:>13.1f}{r['train_cpu_s']:>7.1f}{r['test_rmse']:>10.5f}" if a.train else ""
        print(f"{name:<8}{tune_cols}{train_cols}")
    if "before" in results:
        b, n = results["before"], results["after"]
        if grid:
            diff = max(
                abs(x["rmse"] - y["rmse"])
                for x, y in zip(
                    sorted(b["table"], key=lambda r: (r["rank"], r["maxIter"], r["regParam"])),
                    sorted(n["table"], key=lambda r: (r["rank"], r["maxIter"], r["regParam"])),
                )
            )
            print(
                f"tuning: {b['tune_s'] / n['tune_s']:.1f}x faster (s/fit {b['tune_s'] / b['fits']:.2f} -> "
                f"{n['tune_s'] / n['fits']:.2f}; CPU {b['tune_cpu_s'] / n['tune_cpu_s']:.1f}x less); "
                f"same best point: {b['best'] == n['best']}; "
                f"largest CV RMSE change over the grid {diff:.5f}"
            )
        if a.train:
            print(
                f"train + evaluate: {b['train_s'] / n['train_s']:.1f}x faster "
                f"(CPU {b['train_cpu_s'] / n['train_cpu_s']:.1f}x less); test RMSE change "
                f"{n['test_rmse'] - b['test_rmse']:+.5f}"
            )
    if a.out:
        Path(a.out).write_text(json.dumps({"grid": grid, "folds": a.folds, **results}, indent=1))


if __name__ == "__main__":
    main()
