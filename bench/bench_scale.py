"""A release end to end at scale: prepare-data, train (Spark, local mode), serving load, statistics
slices and query latency, each stage's wall time and peak memory (Python RSS + the driver JVM's RSS).

    python bench/make_synthetic.py --ratings 1000000    # then 5000000, and the default 25 M
    python bench/bench_scale.py data/synthetic/ml-synth-1m [data/synthetic/ml-synth-5m ...] [--markdown out.md]

Each release runs in a fresh process (``--one``) into a scratch data and model folder under data/bench/,
so one release's caches never help the next. Train is what ``python -m engine train`` runs (the
bias-corrected ALS, the plain-ALS and bias-only comparisons, the top-picks model, the ranking
evaluation, the save). Figures come from one run on one machine: say the host and its load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_serving import latency, sample_queries  # noqa: E402
from bench_stats import SLICES  # noqa: E402

STAT_SLICES = ("everything", "one genre (Comedy)", "ratings of 2015-2018")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (the JVM that pyspark starts is one)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


class PeakMemory:
    """Samples this process's RSS plus its child processes' (the driver JVM) every 0.2 s."""

    def __init__(self):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            now = rss_mib(me) + sum(rss_mib(p) for p in descendants(me))
            self.peak = max(self.peak, now)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stage(results: list, name: str, fn):
    print(f"  {name} …", flush=True)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    results.append({"stage": name, "seconds": round(seconds, 1), "peak_mib": round(mem.peak)})
    print(f"  {name}: {seconds:.1f} s, peak {mem.peak:,.0f} MiB (Python + JVM)", flush=True)
    return out


def one(location: str, scratch: Path) -> dict:
    """Every stage on one release, in this process; returns the figures."""
    from engine.data.prepare import prepare_release
    from engine.data.spark_release import open_release
    from engine.data.stats_columnar import ColumnarRelease
    from engine.recommender.serving import RecommenderIndex
    from engine.recommender.training import train_and_save
    from engine.settings import get_settings
    from engine.spark import get_spark

    shutil.rmtree(scratch, ignore_errors=True)
    settings = dataclasses.replace(
        get_settings(), movielens_data=location, data_dir=scratch / "data", model_dir=scratch / "models"
    )
    results: list[dict] = []
    folder = stage(results, "prepare-data", lambda: prepare_release(settings))
    manifest = json.loads((folder / "manifest.json").read_text())

    phases: list[list] = []  # [message, seconds] of each step train reports, to see where its time goes

    def step(_fraction, message):
        now = time.perf_counter()
        if phases:
            phases[-1][1] = round(now - phases[-1][1], 1)
            print(f"    {phases[-1][1]:8.1f} s  {phases[-1][0]}", flush=True)  # as it ends: a long run shows its pace
        phases.append([message, now])

    def train():
        spark = get_spark(settings)
        release = open_release(spark, settings)
        try:
            return train_and_save(spark, release, settings.model_dir, progress=step)
        finally:
            step(1.0, "end")
            phases.pop()

    path, metrics = stage(results, "train (Spark local[*])", train)
    index = stage(results, "serving index load", lambda: RecommenderIndex.load(path))
    columnar = ColumnarRelease(folder)
    for name in STAT_SLICES:
        stage(results, f"statistics: {name}", lambda part=SLICES[name]: columnar.stats(part))
    users, items, folds = sample_queries(index)
    queries = {
        "recommend": latency(lambda u: index.recommend(u, 10), users),
        "similar": latency(lambda m: index.similar(m, 10), items),
        "fold-in": latency(lambda r: index.recommend_new_user(r, 10), folds),
    }
    return {
        "release": manifest["name"],
        "ratings": manifest["ratings"],
        "users": manifest["users"],
        "movies": manifest["movies"],
        "stages": results,
        "train_steps": phases,
        "queries_ms": {k: [round(p50, 2), round(p95, 2)] for k, (p50, p95) in queries.items()},
        "test_rmse": metrics["test_rmse"],
        "n_train": metrics["n_train"],
        "load_avg": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }


def markdown(runs: list[dict]) -> str:
    names = [s["stage"] for s in runs[0]["stages"]]
    head = "| stage | " + " | ".join(f"{r['release']} ({r['ratings'] / 1e6:.1f} M ratings)" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for i, name in enumerate(names):
        cells = [f"{r['stages'][i]['seconds']:,.1f} s · {r['stages'][i]['peak_mib'] / 1024:.1f} GiB" for r in runs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for q in runs[0]["queries_ms"]:
        lines.append(
            f"| {q} p50 / p95 | "
            + " | ".join(f"{r['queries_ms'][q][0]:.1f} / {r['queries_ms'][q][1]:.1f} ms" for r in runs)
            + " |"
        )
    lines.append("| test RMSE | " + " | ".join(f"{r['test_rmse']:.4f}" for r in runs) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("releases", nargs="+", help="GroupLens folders or zips (e.g. from bench/make_synthetic.py)")
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: this process runs one
    args = ap.parse_args()
    scratch_root = REPO / "data" / "bench" / "scale"
    if args.one:
        out = one(args.releases[0], scratch_root / Path(args.releases[0]).name)
        print("RESULT " + json.dumps(out), flush=True)
        return
    runs = []
    for location in args.releases:
        print(f"== {location}", flush=True)
        result = None
        with subprocess.Popen(
            [sys.executable, __file__, "--one", location], stdout=subprocess.PIPE, text=True, cwd=REPO
        ) as proc:
            for line in proc.stdout:  # shown as they come: a 25 M run takes most of an hour
                if line.startswith("RESULT "):
                    result = json.loads(line[7:])
                else:
                    print(line, end="", flush=True)
        if proc.returncode != 0 or result is None:
            sys.exit(f"{location}: the run failed (exit {proc.returncode}); its output is above")
        runs.append(result)
    table = markdown(runs)
    print(f"\nhost: {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}\n\n{table}")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
