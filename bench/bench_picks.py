"""Top-picks settings: chosen on a validation split, then read once on each seed's test split.

    python bench/bench_picks.py validate [--split-seed 42]      # the grid on validation (test untouched)
    python bench/bench_picks.py ease [--split-seed 42]          # EASE beside the implicit ALS, on validation
    python bench/bench_picks.py test [--seeds 42,1,2,3]         # before vs now, each seed's test read once

``validate`` carves a validation split from split seed 42's training split (the project's hash split, seed 7),
fits Spark's implicit ALS for each setting on the rest, and prints NDCG@10 (P@10, R@10, MAP@10) of top-10
lists by the implicit score alone (movies rated in the fitted part left out; relevant = rated >= 4), beside
most popular and EASE (Steck 2019, numpy, lambda 400). ``test`` runs ``train_and_evaluate`` (the app's own
metric: top picks with the held-back rule) with the settings before 2026-12-03 and the current
:class:`~engine.recommender.picks.PicksConfig` on each split seed. ``ease`` scores, on the same validation
split, the app's top-picks order: the implicit ALS (the default settings) standardised and blended with EASE
(:mod:`engine.recommender.ease`, its Gram in numpy here, as tests/test_ease.py checks Spark's), over a grid of
EASE's settings and share. MOVIELENS_DATA picks the release.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.movielens import load_movielens  # noqa: E402
from engine.recommender import ease, picks  # noqa: E402
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


class Carve:
    """The validation split of split seed ``split_seed``'s training split (hash seed 7; test untouched): the
    fitted part (Spark and pandas), its users and movies in sorted order, and each user's relevant held-out
    movies (rated >= 4)."""

    def __init__(self, spark, data, split_seed: int):
        train, _ = split(ratings_frame(spark, data), ALSConfig(split_seed=split_seed))
        self.fit_df, val_df = split(train, ALSConfig(split_seed=7))
        self.fit, val = self.fit_df.toPandas(), val_df.toPandas()
        self.users, self.items = np.sort(self.fit.userId.unique()), np.sort(self.fit.movieId.unique())
        self.rows = np.searchsorted(self.users, self.fit.userId.to_numpy())
        self.cols = np.searchsorted(self.items, self.fit.movieId.to_numpy())
        self.uix = {int(u): i for i, u in enumerate(self.users)}
        self.seen = {int(u): np.searchsorted(self.items, g.movieId.to_numpy()) for u, g in self.fit.groupby("userId")}
        liked = val[val.rating >= RELEVANT_RATING]
        self.relevant = {int(u): set(g.movieId.astype(int)) for u, g in liked.groupby("userId") if int(u) in self.uix}
        print(f"validation: {len(self.fit):,} ratings fitted, {len(val):,} held out, {len(self.relevant)} users")

    def metrics(self, score_of) -> dict:
        """P/R/NDCG/MAP@10 of top-10 lists by ``score_of(user row)`` (every movie's score), rated movies left out."""
        out = {}
        for u in self.relevant:
            s = np.asarray(score_of(self.uix[u]), dtype=np.float64).copy()
            s[self.seen[u]] = -np.inf
            top = np.argpartition(-s, 10)[:10]
            out[u] = self.items[top[np.argsort(-s[top], kind="stable")]].tolist()
        return ranking_metrics(out, self.relevant)


def validate(spark, data, split_seed: int) -> None:
    carve = Carve(spark, data, split_seed)
    users, items = carve.users, carve.items
    print(f"  {'ranker':44s} P@10    R@10    NDCG@10 MAP@10")
    counts = np.bincount(carve.cols, minlength=len(items)).astype(float)
    print(_line("most popular", carve.metrics(lambda u: counts)), flush=True)
    for rank, reg, alpha, iters, neutral in GRID:
        cfg = picks.PicksConfig(rank=rank, max_iter=iters, reg_param=reg, alpha=alpha, neutral=neutral)
        t0 = time.perf_counter()
        user_frame, item_frame = picks.export_factors(picks.fit(carve.fit_df, cfg, blocks=2))
        u = picks.align(user_frame, "userId", users)
        v = picks.align(item_frame, "movieId", items)
        chosen = " (chosen)" if cfg == picks.PicksConfig() else ""
        name = f"implicit ALS r{rank} reg {reg} a {alpha} it {iters} neutral {neutral}{chosen}"
        metrics = carve.metrics(lambda i: v @ u[i])
        print(_line(name, metrics) + f"  {time.perf_counter() - t0:.0f} s", flush=True)
    x = np.zeros((len(users), len(items)), np.float32)
    x[carve.rows, carve.cols] = 1.0
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += EASE_LAMBDA
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    print(_line(f"EASE (numpy, lambda {EASE_LAMBDA:g})", carve.metrics(lambda i: x[i] @ b)))


#: (min_ratings, (liked, middle, disliked)): EASE's movies and X's entries; each with every lam and share below
EASE_GRID = [
    (m, w) for m in (5, 10, 20) for w in ((1.0, 0.5, 0.2), (1.0, 0.5, 0.0), (1.0, 0.5, -0.2), (1.0, 0.3, -0.3))
]
EASE_LAMS = (100.0, 200.0, 400.0, 800.0)
EASE_SHARES = (0.4, 0.5, 0.6)


def validate_ease(spark, data, split_seed: int) -> None:
    carve = Carve(spark, data, split_seed)
    fit, users, items, rows, cols = carve.fit, carve.users, carve.items, carve.rows, carve.cols

    def ndcg(scores: np.ndarray) -> dict:  # a (users x movies) matrix of scores
        return carve.metrics(scores.__getitem__)

    user_frame, item_frame = picks.export_factors(picks.fit(carve.fit_df, picks.PicksConfig(), blocks=2))
    implicit = picks.align(user_frame, "userId", users) @ picks.align(item_frame, "movieId", items).T
    spread = implicit.std(1, keepdims=True)  # 0 for someone with nothing liked: that part then counts 0
    z_implicit = np.where(spread > 1e-12, implicit - implicit.mean(1, keepdims=True), 0.0) / np.maximum(spread, 1e-12)
    print(_line("implicit ALS alone (the default settings)", ndcg(implicit)), flush=True)
    counts = np.bincount(cols, minlength=len(items))
    results = []
    for min_ratings, (liked_w, middle_w, disliked_w) in EASE_GRID:
        cfg = ease.EaseConfig(min_ratings=min_ratings, liked=liked_w, middle=middle_w, disliked=disliked_w)
        keep = np.flatnonzero(counts >= min_ratings)  # ml-latest-small: fewer than max_movies
        column = np.full(len(items), -1)
        column[keep] = np.arange(len(keep))
        x = np.zeros((len(users), len(keep)))
        inside = column[cols] >= 0
        x[rows[inside], column[cols[inside]]] = ease.weights_of(fit.rating.to_numpy()[inside], cfg)
        gram = x.T @ x
        for lam in EASE_LAMS:
            e = x @ ease.weights(gram, lam)
            z_ease = np.zeros_like(implicit)
            z_ease[:, keep] = (e - e.mean(1, keepdims=True)) / np.maximum(e.std(1, keepdims=True), 1e-12)
            for share in EASE_SHARES:
                metrics = ndcg((1 - share) * z_implicit + share * z_ease)
                name = f"min {min_ratings} w {liked_w:g}/{middle_w:g}/{disliked_w:g} lam {lam:g} share {share:g}"
                chosen = ease.EaseConfig(**{**vars(cfg), "lam": lam, "share": share}) == ease.EaseConfig()
                results.append((metrics["ndcg_at_k"], name + (" (chosen)" if chosen else ""), metrics))
            if (min_ratings, lam) == (ease.EaseConfig().min_ratings, ease.EaseConfig().lam):
                print(_line(f"EASE alone, {name.rsplit(' share', 1)[0]}", ndcg(np.where(column >= 0, z_ease, -9))))
        print(f"  ... {len(results)} of {len(EASE_GRID) * len(EASE_LAMS) * len(EASE_SHARES)} settings", flush=True)
    results.sort(key=lambda r: -r[0])
    print("best 12 (the implicit ALS blended with EASE):")
    for _, name, metrics in results[:12]:
        print(_line(name, metrics))
    for _, name, metrics in results:
        if name.endswith("(chosen)"):
            print(_line(name, metrics) + f"  rank {[r[1] for r in results].index(name) + 1} of {len(results)}")


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
    parser.add_argument("what", choices=["validate", "ease", "test"])
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--seeds", default="42,1,2,3")
    args = parser.parse_args()
    settings = get_settings()
    spark = get_spark(settings)
    data = load_movielens(settings.movielens_data)
    if args.what == "validate":
        validate(spark, data, args.split_seed)
    elif args.what == "ease":
        validate_ease(spark, data, args.split_seed)
    else:
        test(spark, data, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
