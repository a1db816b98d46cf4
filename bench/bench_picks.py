"""Top-picks settings: chosen on a validation split, then read once on each seed's test split.

    python bench/bench_picks.py validate [--split-seed 42]      # the grid on validation (test untouched)
    python bench/bench_picks.py test [--seeds 42,1,2,3]         # before vs now, each seed's test read once

``validate`` carves a validation split from split seed 42's training split (the project's hash split, seed 7),
fits Spark's implicit ALS for each setting on the rest, and prints NDCG@10 (P@10, R@10, MAP@10) of top-10
lists by the implicit score alone (movies rated in the fitted part left out; relevant = rated >= 4), beside
most popular and EASE (Steck 2019, numpy, lambda 400). ``test`` runs ``train_and_evaluate`` (the app's own
metric: top picks with the held-back rule) with the settings before 2026-12-03 and the current
:class:`~engine.recommender.picks.PicksConfig` on each split seed. MOVIELENS_DATA picks the release.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movielens import load_movielens  # noqa: E402
from engine.recommender import picks  # noqa: E402
from engine.recommender.evaluation import RELEVANT_RATING, ranking_metrics  # noqa: E402
from engine.recommender.training import ALSConfig, ratings_frame, split, train_and_evaluate  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from engine.spark import get_spark  # noqa: E402

BEFORE = picks.PicksConfig(rank=32, max_iter=15, reg_param=0.1, alpha=0.5, neutral=0.0)
#: (rank, regParam, alpha, iterations, neutral): the 2026-12-03 exploration, the chosen one marked in its output.
GRID = [
    (32, 0.1, 0.5, 15, 0.0),
    (32, 0.1, 1.0, 15, 0.0),
    (32, 0.1, 2.0, 15, 0.0),
    (64, 0.1, 0.5, 15, 0.0),
    (32, 0.3, 0.5, 15, 0.0),
    (32, 0.1, 0.5, 15, 3.0),
    (32, 0.1, 1.0, 15, 3.0),
    (32, 0.1, 2.0, 15, 3.0),
    (32, 0.1, 4.0, 15, 3.0),
    (32, 0.1, 1.0, 15, 3.5),
    (32, 0.1, 2.0, 15, 2.5),
    (32, 0.2, 2.0, 15, 3.0),
    (32, 0.3, 2.0, 15, 3.0),
    (32, 0.5, 2.0, 15, 3.0),
    (32, 0.5, 3.0, 15, 3.0),
    (24, 0.1, 2.0, 15, 3.0),
    (48, 0.2, 2.0, 15, 3.0),
    (32, 0.1, 2.0, 20, 3.0),
]
EASE_LAMBDA = 400.0


def _line(name: str, m: dict) -> str:
    return f"  {name:44s} {m['precision_at_k']:.4f}  {m['recall_at_k']:.4f}  {m['ndcg_at_k']:.4f}  {m['map_at_k']:.4f}"


def validate(spark, data, split_seed: int) -> None:
    train, _ = split(ratings_frame(spark, data), ALSConfig(split_seed=split_seed))
    fit_df, val_df = split(train, ALSConfig(split_seed=7))
    fit, val = fit_df.toPandas(), val_df.toPandas()
    users, items = np.sort(fit.userId.unique()), np.sort(fit.movieId.unique())
    uix = {int(u): i for i, u in enumerate(users)}
    iix = {int(m): i for i, m in enumerate(items)}
    seen = {int(u): [iix[int(m)] for m in g.movieId] for u, g in fit.groupby("userId")}
    liked = val[val.rating >= RELEVANT_RATING]
    relevant = {int(u): set(g.movieId.astype(int)) for u, g in liked.groupby("userId") if int(u) in uix}
    print(f"validation: {len(fit):,} ratings fitted, {len(val):,} held out, {len(relevant)} users")
    print(f"  {'ranker':44s} P@10    R@10    NDCG@10 MAP@10")

    def top10(score_of) -> dict:
        out = {}
        for u in relevant:
            s = np.asarray(score_of(uix[u]), dtype=np.float64).copy()
            s[seen[u]] = -np.inf
            top = np.argpartition(-s, 10)[:10]
            out[u] = items[top[np.argsort(-s[top], kind="stable")]].tolist()
        return out

    counts = np.bincount(fit.movieId.map(iix).to_numpy(), minlength=len(items)).astype(float)
    print(_line("most popular", ranking_metrics(top10(lambda u: counts), relevant)), flush=True)
    for rank, reg, alpha, iters, neutral in GRID:
        cfg = picks.PicksConfig(rank=rank, max_iter=iters, reg_param=reg, alpha=alpha, neutral=neutral)
        t0 = time.perf_counter()
        user_frame, item_frame = picks.export_factors(picks.fit(fit_df, cfg, blocks=2))
        u = picks.align(user_frame, "userId", users)
        v = picks.align(item_frame, "movieId", items)
        chosen = " (chosen)" if cfg == picks.PicksConfig() else ""
        name = f"implicit ALS r{rank} reg {reg} a {alpha} it {iters} neutral {neutral}{chosen}"
        metrics = ranking_metrics(top10(lambda i: v @ u[i]), relevant)
        print(_line(name, metrics) + f"  {time.perf_counter() - t0:.0f} s", flush=True)
    x = np.zeros((len(users), len(items)), np.float32)
    x[fit.userId.map(uix).to_numpy(), fit.movieId.map(iix).to_numpy()] = 1.0
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += EASE_LAMBDA
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    print(_line(f"EASE (numpy, lambda {EASE_LAMBDA:g})", ranking_metrics(top10(lambda i: x[i] @ b), relevant)))


def test(spark, data, seeds: list[int]) -> None:
    print(f"  {'split seed / top picks':44s} P@10    R@10    NDCG@10 MAP@10")
    means = {"before": [], "now": []}
    for seed in seeds:
        for name, cfg in (("before", BEFORE), ("now", picks.PicksConfig())):
            result = train_and_evaluate(
                spark, data, ALSConfig(split_seed=seed), lambda f, m: None, compare_baselines=False, picks_cfg=cfg
            )
            ranking = result["metrics"]["ranking"]
            means[name].append(ranking["picks"]["ndcg_at_k"])
            print(_line(f"seed {seed}, {name}", ranking["picks"]), flush=True)
            if name == "now":
                print(_line(f"seed {seed}, most popular", ranking["popularity"]), flush=True)
    for name, values in means.items():
        print(f"  mean NDCG@10 {name}: {np.mean(values):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["validate", "test"])
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--seeds", default="42,1,2,3")
    args = parser.parse_args()
    settings = get_settings()
    spark = get_spark(settings)
    data = load_movielens(settings.movielens_data)
    if args.what == "validate":
        validate(spark, data, args.split_seed)
    else:
        test(spark, data, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
